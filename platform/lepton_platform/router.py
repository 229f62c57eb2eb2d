"""Outermost layer of the request path: `/fn/{name}` -> the function's fleet, with auth.

`admit` is the whole decision; the ASGI `Router` here and the socket-level fast path in
`connection.py` both ask it, so an invocation is judged the same whichever way it came, and
both settle the trace it runs in with `tracing.py`.
A request with `Prefer: respond-async` becomes an async job (`jobs/`) instead: `accepted`
is the answer both paths give once the job is stored.
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from lepton.handlers import ASGI
from lepton_platform.asgi import ASGIApp, BodyTooLarge, Message, Receive, Refusal, Scope, Send, header, read_body, send_refusal, too_large
from lepton_platform.jobs.runner import QueueFull
from lepton_platform.proxy import DROP_REQUEST

if TYPE_CHECKING:
    from lepton_platform.jobs.store import Job
    from lepton_platform.service import Platform
    from lepton_platform.tracing import Trace

PREFIX = "/fn/"
TAG_HEADER = b"lepton-tag"  # or /fn/NAME@TAG: the revision with that tag takes the request
BEARER = ((b"www-authenticate", b"Bearer"),)
# Headers kept with a job for its attempts: what the replica would have had, less `Prefer`.
NOT_KEPT = {"prefer"}


def admit(
    platform: Platform,
    name: str,
    method: str,
    authorization: str | None,
    content_length: str | None,
    *,
    websocket: bool = False,
    tag: str | None = None,
) -> Any:
    """The fleet of the revision that takes this request, or the Refusal that answers it
    instead. `name` may carry a tag (`NAME@TAG`), as may the `Lepton-Tag` header."""
    if "@" in name:
        name, _, tag = name.partition("@")
    fleet = platform.fleets.get(name)
    if fleet is None:
        return Refusal(404, f"function {name!r} not found; `lepton ls` lists the deployed ones")
    routes = platform.splits.get(name)
    if routes is not None:
        fleet = routes.pick(tag or None)
    elif tag:
        fleet = None
    if fleet is None:
        return Refusal(404, f"function {name!r} has no tag {tag!r}; `lepton revisions {name}` shows its tags")
    spec = fleet.spec
    # Who may call is the function's (its main revision's) rule, whichever revision takes the
    # call; a revision that is itself private still needs the token.
    if not (spec.public and (routes is None or routes.main.spec.public)):
        denied = platform.callers.refusal(name, authorization)
        if denied is not None:
            status, reason = denied
            return Refusal(status, reason, BEARER)
    asgi = spec.handler is not None and spec.handler.kind == ASGI
    if websocket:
        if not asgi:
            return Refusal(400, f"function {name!r} is not an ASGI app: WebSockets reach only functions deployed with @lepton.asgi")
    elif not asgi and method not in spec.methods and not (method == "HEAD" and "GET" in spec.methods):
        allowed = [*spec.methods, *(["HEAD"] if "GET" in spec.methods else [])]
        return Refusal(405, f"function {name!r} allows {', '.join(allowed)}; not {method}", ((b"allow", ", ".join(allowed).encode()),))
    refused = too_large(content_length, platform.config.limits.max_invocation_bytes)
    if refused:
        return Refusal(413, f"{refused} for function {name!r}")
    return fleet


def wants_async(prefer: str | None) -> bool:
    """Whether a `Prefer` header asks for `respond-async` (RFC 7240: comma-separated
    preferences, each `token[=value][; params]`, tokens case-insensitive; others ignored)."""
    if not prefer:
        return False
    return any(item.split(";", 1)[0].split("=", 1)[0].strip().lower() == "respond-async" for item in prefer.split(","))


def accepted(job: Job) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of the 202 that says a job was stored."""
    url = f"/v1/jobs/{job.id}"
    body = json.dumps({"id": job.id, "function": job.function, "state": job.state, "url": url}).encode()
    return [
        (b"location", url.encode()),
        (b"preference-applied", b"respond-async"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ], body


def job_refused(exc: Exception) -> Refusal:
    """The answer when a job could not be stored: its function's queue is full, or the disk failed."""
    if isinstance(exc, QueueFull):
        return Refusal(429, str(exc), ((b"retry-after", b"1"),))
    return Refusal(503, f"job not stored ({exc}); nothing was accepted, send it again")


class Router:
    def __init__(self, app: ASGIApp, platform: Platform) -> None:
        self.app = app
        self.platform = platform
        self.limit = platform.config.limits.max_invocation_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(PREFIX) :].partition("/")[0]
        websocket = scope["type"] == "websocket"
        fleet = admit(
            self.platform,
            name,
            scope.get("method", "GET"),
            header(scope, b"authorization"),
            header(scope, b"content-length"),
            websocket=websocket,
            tag=header(scope, TAG_HEADER),
        )
        if isinstance(fleet, Refusal):
            await send_refusal(send, fleet, scope)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        # As it came on the wire: decoding it first would make `%3F` in a sub-path a query.
        raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").partition("?")[0]
        target = raw + ("?" + query if query else "")
        trace = self.platform.tracing.invocation(fleet.name, header(scope, b"traceparent"), header(scope, b"tracestate"))
        status = 0
        stamp = trace.reply_header()

        async def answer(message: Message) -> None:
            """The answer, whoever gives it (the replica, or the platform refusing), with the
            trace id; its status is the span's."""
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), stamp]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            if not websocket and wants_async(header(scope, b"prefer")):
                await self._submit(fleet, scope, receive, answer, target, trace)
                return
            scope["lepton.fleet"] = fleet
            scope["lepton.limit"] = self.limit
            scope["lepton.path"] = "/" + raw[len(PREFIX) :].partition("/")[2] + ("?" + query if query else "")
            scope["lepton.prefix"] = PREFIX + raw[len(PREFIX) :].partition("/")[0]  # /fn/NAME, or /fn/NAME@TAG as called
            scope["lepton.trace"] = trace
            await self.app(scope, receive, answer)
        finally:
            self.platform.tracing.end(trace, status, scope.get("lepton.replica"), scope.get("lepton.cold"))

    async def _submit(self, fleet: Any, scope: Scope, receive: Receive, send: Send, target: str, trace: Trace) -> None:
        try:
            body = await read_body(receive, self.limit)
        except BodyTooLarge as exc:
            await send_refusal(send, Refusal(413, f"{exc} for function {fleet.name!r}"))
            return
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k not in DROP_REQUEST and k.decode("latin-1") not in NOT_KEPT
        ]
        try:  # with its trace, which each attempt continues
            job = await self.platform.jobs.submit(fleet.spec, scope["method"], target, headers + trace.headers(), body)
        except (OSError, sqlite3.Error, QueueFull) as exc:
            await send_refusal(send, job_refused(exc))
            return
        head, payload = accepted(job)
        await send({"type": "http.response.start", "status": 202, "headers": head})
        await send({"type": "http.response.body", "body": payload})
