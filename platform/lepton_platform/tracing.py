"""The platform's part in a trace (W3C Trace Context; parsing in `lepton.runtime.tracing`).

Every invocation reaches its replica with a valid `traceparent`: the caller's (with its
`tracestate`) or, when the caller sent none or an invalid one, a new trace. The caller gets
the trace id back in `Lepton-Trace-Id`. With `tracing.otlp_endpoint` in config.yaml the
platform also exports a SERVER span per invocation and a CONSUMER span per event delivery,
and that span is the parent the next hop sees; without it the caller's traceparent goes on
unchanged. Replicas get the endpoint too and export a span per handler run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lepton.runtime.tracing import OTLP_ENDPOINT_ENV, TRACEPARENT, TRACESTATE, new_traceparent, parse
from lepton_platform.config import ConfigError, TracingConfig

if TYPE_CHECKING:
    from lepton.runtime.otlp import Exporter, Span

TRACE_ID_HEADER = b"lepton-trace-id"
# Set by the platform from what the caller sent, never passed on as it came.
TRACE_HEADERS = {TRACEPARENT.encode(), TRACESTATE.encode()}


@dataclass(slots=True)
class Trace:
    """One invocation's or delivery's trace: the `traceparent` (version 00) and `tracestate`
    the next hop gets, and the platform's span. Plain strings: this is made for every call."""

    traceparent: str
    state: str | None = None
    span: Span | None = None

    @property
    def trace_id(self) -> str:
        return self.traceparent[3:35]

    def headers(self) -> list[tuple[str, str]]:
        headers = [(TRACEPARENT, self.traceparent)]
        if self.state:
            headers.append((TRACESTATE, self.state))
        return headers

    def head(self) -> bytes:
        """The same as request header lines, for the socket fast path."""
        head = f"traceparent: {self.traceparent}\r\n"
        if self.state:
            head += f"tracestate: {self.state}\r\n"
        return head.encode("latin-1")

    def reply_header(self) -> tuple[bytes, bytes]:
        return TRACE_ID_HEADER, self.traceparent[3:35].encode()


class Tracing:
    def __init__(self, config: TracingConfig) -> None:
        self.endpoint = config.otlp_endpoint
        self.exporter: Exporter | None = None
        if self.endpoint:
            try:
                from lepton.runtime.otlp import Exporter
            except ImportError as exc:
                raise ConfigError(
                    f"configuration tracing.otlp_endpoint is set, but spans cannot be exported: {exc}; install lepton[otlp]"
                ) from exc
            self.exporter = Exporter(self.endpoint, {"service.name": config.service_name})

    def invocation(self, function: str, traceparent: str | None, tracestate: str | None) -> Trace:
        """The trace an invocation of `function` runs in, from the caller's headers."""
        caller = parse(traceparent, tracestate)
        if self.exporter is None:
            return Trace(caller.header(), caller.state) if caller is not None else Trace(new_traceparent())
        span, ours = self.exporter.start(f"invoke {function}", caller, "server", {"lepton.function": function})
        return Trace(ours.header(), ours.state, span)

    def delivery(self, trigger: str, function: str, traceparent: str | None, tracestate: str | None) -> Trace:
        """The trace a delivery of an event runs in, from the event's distributed-tracing extension."""
        caller = parse(traceparent, tracestate)
        if self.exporter is None:
            return Trace(caller.header(), caller.state) if caller is not None else Trace(new_traceparent())
        span, ours = self.exporter.start(f"deliver {trigger}", caller, "consumer", {"lepton.trigger": trigger, "lepton.function": function})
        return Trace(ours.header(), ours.state, span)

    def end(self, trace: Trace, status: int, replica: Any = None, cold: bool | None = None) -> None:
        """End the trace's span, if it has one and it is not ended yet, with how it went
        (status 0: no answer)."""
        if trace.span is None or self.exporter is None:  # only an exporter makes spans
            return
        attributes: dict[str, Any] = {}
        if replica is not None:
            attributes["lepton.revision"] = replica.revision.id
            attributes["lepton.replica"] = replica.id
        if cold is not None:
            attributes["lepton.cold_start"] = cold
        self.exporter.end(trace.span, status, attributes)
        trace.span = None

    def replica_environment(self) -> dict[str, str]:
        """Where replicas export their spans (over TCP, which their sandbox leaves alone)."""
        return {OTLP_ENDPOINT_ENV: self.endpoint} if self.endpoint else {}

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.close()
