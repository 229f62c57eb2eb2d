"""W3C Trace Context: which trace a request, and everything it causes, belongs to.

A handler runs with its own span context in `current` (a child of the caller's
`traceparent`, or a new trace) and that trace's id in `trace_id`. Log lines read `trace_id`
when they are written; events the function replies with and calls it makes through
`lepton.Client` carry `current` on. Both are context variables, so each request has its own,
and a sync handler's thread sees its request's (the runtime runs it in a copy of the context).
The platform parses what callers send with the same `parse`.

    parent = parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    enter(parent.child() if parent else new())
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from lepton.runtime.otlp import Exporter

logger = logging.getLogger("lepton.runtime")

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
OTLP_ENDPOINT_ENV = "LEPTON_OTLP_ENDPOINT"  # where a replica exports its spans; unset: nowhere
# version-traceid-parentid-flags in lower-case hex; a later version may add fields after a dash.
_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_NO_TRACE, _NO_PARENT = "0" * 32, "0" * 16


class TraceParent(NamedTuple):
    """One `traceparent` (and the `tracestate` that came with it, passed on as it came). A
    tuple: made for every request, and a tuple is the cheapest immutable record to make."""

    trace_id: str
    parent_id: str
    flags: str = "01"
    state: str | None = None

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    def child(self) -> TraceParent:
        """The same trace with a new span of ours as the parent of what we call."""
        return TraceParent(self.trace_id, os.urandom(8).hex(), self.flags, self.state)


trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("lepton_trace_id", default=None)
current: contextvars.ContextVar[TraceParent | None] = contextvars.ContextVar("lepton_traceparent", default=None)


def parse(value: object, state: object = None) -> TraceParent | None:
    """A `traceparent` header's fields, or None when it is missing or invalid: version 00 is
    exactly 55 characters; a later version (not ff) is read by its first four fields; ids are
    lower-case hex and not all zeros. Without a valid traceparent the tracestate goes too.
    Either may be anything (an event's attribute): only strings are read."""
    match = _FORMAT.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        return None
    version, trace, parent, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None) or trace == _NO_TRACE or parent == _NO_PARENT:
        return None
    return TraceParent(trace, parent, flags, state if isinstance(state, str) and state else None)


def new() -> TraceParent:
    """A new trace, sampled: nobody upstream decided otherwise."""
    ids = os.urandom(24).hex()
    return TraceParent(ids[:32], ids[32:])


def new_traceparent() -> str:
    """`new().header()` without the tuple in between, for the platform's fast path."""
    ids = os.urandom(24).hex()
    return f"00-{ids[:32]}-{ids[32:]}-01"


def enter(context: TraceParent) -> None:
    """Make `context` the trace of the rest of this request (its task and the threads it runs)."""
    current.set(context)
    trace_id.set(context.trace_id)


def outgoing() -> dict[str, str]:
    """Headers that continue the current trace on a call out; none outside a traced request."""
    context = current.get()
    if context is None:
        return {}
    headers = {TRACEPARENT: context.header()}
    if context.state:
        headers[TRACESTATE] = context.state
    return headers


def exporter(resource: dict[str, str]) -> Exporter | None:
    """The span exporter this replica was given an endpoint for (LEPTON_OTLP_ENDPOINT), or
    None; without the `otlp` extra installed it says so once and exports nothing."""
    endpoint = os.environ.get(OTLP_ENDPOINT_ENV)
    if not endpoint:
        return None
    try:
        from lepton.runtime.otlp import Exporter
    except ImportError as exc:
        logger.warning("[%s] spans are not exported to %s: %s (install lepton[otlp])", os.getpid(), endpoint, exc)
        return None
    return Exporter(endpoint, resource)
