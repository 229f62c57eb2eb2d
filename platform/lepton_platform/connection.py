"""One HTTP/1.1 connection to the platform's port: where an invocation enters.

An invocation of an embedded function (`/fn/NAME/...`) is proxied straight from this socket to
a pooled connection to a replica (`upstream.py`), with no ASGI in between: the same checks as
the ASGI request path (`router.admit`, `activator.acquire`), a fraction of its CPU. Any other
request hands the connection over to uvicorn's own protocol and the ASGI app: the API, the
event ingress, and the ASGI request path, which also serves HEAD, HTTP/1.0, the Knative
backend and the broker's deliveries.

`Prefer: respond-async` makes the request an async job, answered 202 once it is stored. A
WebSocket upgrade to an ASGI function becomes a tunnel (`tunnel.py`): the bytes pass both
ways untouched, and the socket holds one of the replica's slots until it closes.

Pipelining: a request that arrives in the same read as the end of the one before it is not
answered; the reply to the first says `Connection: close` and the client sends it again
(RFC 9112, section 9.3.2).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lepton_platform.activator import acquire
from lepton_platform.asgi import Refusal, error_body
from lepton_platform.fleet import Fleet
from lepton_platform.proxy import DROP_REQUEST, no_answer, replica_failed
from lepton_platform.jobs.runner import QueueFull
from lepton_platform.router import NOT_KEPT, PREFIX, TAG_HEADER, accepted, admit, job_refused, wants_async
from lepton_platform.tunnel import Tunnel
from lepton_platform.upstream import open_unix

if TYPE_CHECKING:
    from lepton_platform.service import Platform
    from lepton_platform.tracing import Trace

logger = logging.getLogger("lepton.platform.connection")

METHODS = {b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"}
MAX_REQUEST_LINE = 8192
STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
IDLE, READING, BUSY, TUNNEL, HANDED, LINGERING = "idle", "reading", "busy", "tunnel", "handed", "lingering"
LINGER = 5.0  # seconds a refused request's remaining bytes are read and dropped before closing


class Stop(Exception):
    """Raised from a parser callback to stop reading this connection's input."""


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status


def replica_target(url: bytes) -> bytes:
    """`/fn/NAME/rest?query` as the replica sees it: `/rest?query`."""
    path, mark, query = url[len(PREFIX):].partition(b"?")
    return b"/" + path.partition(b"/")[2] + mark + query


class Deadlines:
    """One timer ticking for all connections, in place of two timers per request: an
    exchange's timeout and a kept-alive connection's idle limit are checked every TICK."""

    TICK = 0.25

    def __init__(self) -> None:
        self.connections: set[PlatformConnection] = set()
        self.handle: asyncio.TimerHandle | None = None

    def add(self, connection: PlatformConnection) -> None:
        self.connections.add(connection)
        if self.handle is None:
            self.handle = connection.loop.call_later(self.TICK, self._tick, connection.loop)

    def discard(self, connection: PlatformConnection) -> None:
        self.connections.discard(connection)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(self.connections):
            connection.check_deadlines(now)
        self.handle = loop.call_later(self.TICK, self._tick, loop) if self.connections else None


class PlatformConnection(asyncio.Protocol):
    """uvicorn builds one per accepted connection (`uvicorn.Config(http=...)`)."""

    def __init__(self, platform: Platform, deadlines: Deadlines, *, config: Any, server_state: Any,
                 app_state: dict[str, Any], _loop: asyncio.AbstractEventLoop | None = None) -> None:
        if not config.loaded:
            config.load()
        self.platform = platform
        self.deadlines = deadlines
        self.config = config
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.limit = platform.config.limits.max_invocation_bytes
        self.transport: asyncio.Transport | None = None
        self.state = IDLE
        self.name: str | None = None  # of the function the request in hand is for
        self.pending = b""  # read but not parsed: a request line being peeked at, or the next request
        self.keep_alive = True
        self.closing = False
        self.lost = False
        self.idle_since: float | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.exchange = 0
        self._new_request()

    def _new_request(self) -> None:
        self.waiting: asyncio.Task[None] | None = None  # while it waits for a replica (activator)
        self.method = self.url = b""
        self.forwarded: list[bytes] = []  # header lines the replica gets
        self.dropped: dict[bytes, bytes] = {}  # the rest, by lower-case name
        self.received: list[bytes] = []
        self.size = 0
        self.complete = False
        self.refusal: Refusal | None = None
        self.fleet: Any = None
        self.trace: Trace | None = None  # once admitted
        self.replica: Any = None
        self.cold = False
        self.upstream: Any = None
        self.deadline: float | None = None  # for the replica's reply to begin
        self.status: int | None = None
        self.unsent = b""  # the start of a reply whose status line is not all here yet
        self.spliced = False
        self.started = 0.0
        self.job = False  # `Prefer: respond-async`
        self.websocket = False
        self.upgraded = b""  # what came after the upgrade request's head, for the tunnel
        self.exchange += 1

    # -- asyncio.Protocol, reading side ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server_state.connections.add(self)
        self.deadlines.add(self)
        self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server_state.connections.discard(self)
        if self.state != BUSY:
            self.deadlines.discard(self)  # a busy one keeps its timeout until the replica answers
        if self.state == TUNNEL:
            self.upstream.close()  # its connection_lost finishes the exchange
        elif self.state == BUSY and self.upstream is not None and self.status is not None:
            self.upstream.abort()  # a reply streaming to nobody: stop it
            self._finish()
        elif self.waiting is not None and not self.waiting.done():
            self.waiting.cancel()  # still waiting for a replica: leave the queue
        # Otherwise the exchange runs to its end (or timeout) and frees the replica then.

    def data_received(self, data: bytes) -> None:
        if self.state == LINGERING:
            return  # the rest of a refused request's body
        self.idle_since = None
        if self.state == TUNNEL:
            self.upstream.write(data)
            return
        if self.state == READING:
            self._feed(data)
            return
        self.pending += data
        if self.state == BUSY:
            self.transport.pause_reading()  # the next request waits for this reply
            return
        self._start_next()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: finish the reply in flight, then close."""
        self.closing = True
        if self.state in (IDLE, TUNNEL):
            self.transport.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def _start_next(self) -> None:
        """Peek at the request line of the request `pending` starts with: ours or uvicorn's."""
        data = self.pending
        end = data.find(b"\r\n", 0, MAX_REQUEST_LINE)
        if end < 0 and len(data) < MAX_REQUEST_LINE:
            return  # the rest of the line is still on its way
        self.name = self._invocation(data[:end]) if end >= 0 else None
        if self.name is None:
            self._hand_over()
            return
        self.pending = b""
        self.state = READING
        self._feed(data)

    def _invocation(self, line: bytes) -> str | None:
        """The function's name when the request line is one for the fast path (whose method
        and target are kept; the parser checks them as it reads the same line)."""
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] not in METHODS or parts[2] != b"HTTP/1.1" or not parts[1].startswith(b"/fn/"):
            return None
        self.method, self.url = parts[0], parts[1]
        name = parts[1][len(PREFIX):].split(b"/", 1)[0].split(b"?", 1)[0].decode("latin-1")
        if "%" in name:
            name = unquote(name)
        fleet = self.platform.fleets.get(name.partition("@")[0])
        return name if fleet is None or isinstance(fleet, Fleet) else None

    def _hand_over(self) -> None:
        """From here on uvicorn serves this connection, starting with the bytes in `pending`."""
        inner = HttpToolsProtocol(config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop)
        self.server_state.connections.discard(self)
        self.deadlines.discard(self)
        data, self.pending = self.pending, b""
        inner.connection_made(self.transport)
        self.transport.set_protocol(inner)
        self.transport.resume_reading()
        if self.closing:
            inner.shutdown()
        inner.data_received(data)

    def _feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.keep_alive = False  # after a tunnel, or an upgrade that is not a WebSocket's (plain HTTP), close
            self.upgraded = data[exc.args[0]:] if self.websocket else b""
        except httptools.HttpParserError as exc:
            if self.complete:
                self.keep_alive = False  # a pipelined request follows: see the module docstring
            elif self.refusal is not None:  # refused before the body was read
                self._refuse(self.refusal, close=True)
                return
            elif isinstance(exc, httptools.HttpParserCallbackError):
                logger.error("invocation failed in the platform", exc_info=exc.__context__ or exc)
                self._refuse(Refusal(500, "internal error in the platform; its log has the traceback"), close=True)
                return
            else:
                self._refuse(Refusal(400, f"malformed request: {exc}"), close=True)
                return
        if self.complete:
            self.state = BUSY
            self._dispatch()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            raise Stop("pipelined request")

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in DROP_REQUEST:
            self.dropped[lowered] = value
        else:
            self.forwarded.append(b"%s: %s\r\n" % (name, value))
            if lowered == b"prefer" and wants_async(value.decode("latin-1")):
                self.job = True

    def on_headers_complete(self) -> None:
        authorization, content_length = self.dropped.get(b"authorization"), self.dropped.get(b"content-length")
        expect = self.dropped.get(b"expect", b"").lower()
        # A WebSocket only with `Connection: Upgrade` too: the parser then hands over what follows.
        self.websocket = self.dropped.get(b"upgrade", b"").lower() == b"websocket" and self.parser.should_upgrade()
        tag = self.dropped.get(TAG_HEADER)
        admitted = admit(self.platform, self.name, self.method.decode("latin-1"), authorization and authorization.decode("latin-1"),
                         content_length and content_length.decode("latin-1"), websocket=self.websocket, tag=tag and tag.decode("latin-1"))
        if isinstance(admitted, Refusal):
            self.refusal = admitted
            if admitted.status == 413 or expect == b"100-continue":
                raise Stop(admitted.detail)  # answer now, without reading the body
            return
        self.fleet = admitted
        traceparent, tracestate = self.dropped.get(b"traceparent"), self.dropped.get(b"tracestate")
        self.trace = self.platform.tracing.invocation(admitted.name, traceparent and traceparent.decode("latin-1"),
                                                      tracestate and tracestate.decode("latin-1"))
        if expect == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self.refusal is not None:
            return  # read and dropped, so the connection stays usable
        self.size += len(body)
        if self.size > self.limit:
            self.refusal = Refusal(413, f"request body is over the {self.limit} byte limit for function {self.fleet.name!r}")
            raise Stop(self.refusal.detail)
        self.received.append(body)

    def on_message_complete(self) -> None:
        self.complete = True
        if not self.parser.should_keep_alive():
            self.keep_alive = False

    # -- forwarding ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.refusal is not None:
            self._refuse(self.refusal)
            return
        if self.job and not self.websocket:
            self._spawn(self._submit())
            return
        self.started = time.perf_counter()
        replica = self.fleet.try_acquire()
        if replica is not None:
            self._forward(replica, False)
        else:
            self.waiting = self._spawn(self._wait_for_replica(self.fleet))

    async def _wait_for_replica(self, fleet: Any) -> None:
        try:
            acquired = await acquire(fleet, self.platform.metrics)
        except asyncio.CancelledError:  # the caller hung up while it waited: its place in the queue goes
            self._done()
            raise
        if isinstance(acquired, Refusal):
            self._refuse(acquired)
        elif self.lost:
            fleet.release(acquired[0])
            self._done()
        else:
            self._forward(*acquired)

    async def _submit(self) -> None:
        """Store the request as an async job; 202 once it is stored."""
        kept = [line[:-2].decode("latin-1").split(": ", 1) for line in self.forwarded]
        headers = [(name.lower(), value) for name, value in kept if name.lower() not in NOT_KEPT] + self.trace.headers()
        try:
            job = await self.platform.jobs.submit(self.fleet.spec, self.method.decode("latin-1"), self.url.decode("latin-1"),
                                                  headers, b"".join(self.received))
        except (OSError, sqlite3.Error, QueueFull) as exc:
            self._refuse(job_refused(exc))
            return
        head, body = accepted(job)
        self.status = 202
        if not self.lost:
            close = [] if self.keep_alive and not self.closing else [b"connection: close\r\n"]
            self.transport.write(b"".join([status_line(202), *(b"%s: %s\r\n" % h for h in (*head, self.trace.reply_header())), *close,
                                           b"\r\n", body]))
        self._done()

    def _head(self, replica: Any) -> bytes:
        """The request line and headers as the replica gets them."""
        return b"".join([b"%s %s HTTP/1.1\r\nhost: replica\r\nx-forwarded-prefix: %s%s\r\n"
                         % (self.method, replica_target(self.url), PREFIX.encode(), self.name.encode()), self.trace.head(), *self.forwarded])

    def _forward(self, replica: Any, cold: bool) -> None:
        self.replica, self.cold = replica, cold
        if self.websocket:
            self.deadline = self.loop.time() + self.fleet.spec.timeout + 5  # to connect, then for the answer to the upgrade
            self._spawn(self._hand_over_socket(replica, self.exchange) if replica.handoff else self._open_tunnel(replica, self.exchange))
            return
        body = b"".join(self.received)
        request = b"".join([self._head(replica), b"content-length: %d\r\n\r\n" % len(body), body])
        self.deadline = self.loop.time() + self.fleet.spec.timeout + 5
        upstream = replica.pool.take()
        if upstream is not None:
            self.upstream = upstream
            upstream.send(request, self)
        else:
            self._spawn(self._connect(replica, request, self.exchange))

    async def _hand_over_socket(self, replica: Any, exchange: int) -> None:
        """Give the caller's socket to the replica (handoff.py): the platform leaves the data
        path. The slot stays taken until the replica says the socket closed. Where it cannot
        be handed over, the tunnel carries it."""
        try:
            async with asyncio.timeout(5):
                await replica.handoff.connect()
        except (OSError, TimeoutError) as exc:
            logger.warning("replica %s takes no handed-over WebSockets (%s); tunnelling them", replica.id, str(exc) or "no answer")
            replica.handoff = None  # its next ones go straight to the tunnel
            await self._open_tunnel(replica, exchange)
            return
        if self.exchange != exchange:  # timed out meanwhile: answered, and the slot freed
            return
        if self.lost:
            self._finish()
            return
        # From here to the abort nothing awaits: the caller's bytes go either all to the replica or all through us.
        self.transport.pause_reading()  # what was read goes along; the replica reads the rest itself
        head = b"".join([self._head(replica), b"connection: Upgrade\r\nupgrade: %s\r\n\r\n" % self.dropped[b"upgrade"],
                         self.upgraded, self.pending])
        fleet, cold, started, metrics = self.fleet, self.cold, self.started, self.platform.metrics

        def closed() -> None:
            fleet.release(replica)
            metrics.invoked(fleet.name, 101, time.perf_counter() - started, cold)

        fd = os.dup(self.transport.get_extra_info("socket").fileno())
        try:
            replica.handoff.send(fd, head, closed)
        except OSError as exc:
            logger.info("WebSocket to %s not handed over (%s); tunnelling it", replica.id, exc)
            self.transport.resume_reading()
            await self._open_tunnel(replica, exchange)
            return
        finally:
            os.close(fd)
        self.platform.tracing.end(self.trace, 101, replica, self.cold)
        self.replica = None  # the slot is `closed`'s to free now
        self.state = HANDED
        self.deadline = None
        self.transport.abort()  # our copy only: the connection lives on in the replica

    async def _open_tunnel(self, replica: Any, exchange: int) -> None:
        upgrade = self.dropped[b"upgrade"]
        try:
            _, tunnel = await open_unix(lambda: Tunnel(self), replica.pool.path)
        except OSError as exc:
            if self.exchange == exchange:
                self.failed(exc)
            return
        if self.exchange != exchange:  # timed out meanwhile: the exchange is over
            tunnel.close()
            return
        if self.lost:  # the caller went away meanwhile
            tunnel.close()
            self._finish()
            return
        self.upstream = tunnel
        self.state = TUNNEL
        # With what the caller sent after its request, and while we connected (reading paused).
        tunnel.write(b"".join([self._head(replica), b"connection: Upgrade\r\nupgrade: %s\r\n\r\n" % upgrade,
                               self.upgraded, self.pending]))
        self.upgraded = self.pending = b""
        self.transport.resume_reading()

    # -- tunnel.Peer: a WebSocket's bytes from the replica ------------------------------------

    def tunnel_data(self, data: bytes) -> None:
        if self.status is None:  # the replica's answer to the upgrade: 101, or a refusal
            self.deadline = None
            self.status = int(data[9:12]) if data[9:12].isdigit() else 502
        if not self.lost:
            self.transport.write(data)

    def tunnel_closed(self) -> None:
        if self.state != TUNNEL:
            return
        self.upstream = None
        if self.status is None:
            self._reply(replica_failed(self.fleet, self.replica, ConnectionResetError("closed before answering the upgrade")))
            return
        self._finish()

    async def _connect(self, replica: Any, request: bytes, exchange: int) -> None:
        try:
            upstream = await replica.pool.connect()
        except OSError as exc:
            if self.exchange == exchange:
                self.failed(exc)
            return
        if self.exchange != exchange:  # timed out meanwhile
            replica.pool.put_back(upstream)
            return
        self.upstream = upstream
        upstream.send(request, self)

    def check_deadlines(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline:
            self._timed_out()
        elif self.idle_since is not None and now - self.idle_since >= self.config.timeout_keep_alive:
            self.transport.close()

    def _timed_out(self) -> None:
        self.deadline = None
        if self.upstream is not None:
            self.upstream.abort()
        self._reply(no_answer(self.fleet))

    # -- upstream.Sink: the replica's reply, on its way back -------------------------------

    def head(self, status: int) -> None:
        self.deadline = None
        self.status = status

    def data(self, chunk: bytes) -> None:
        """Pass the reply through as it comes, with our headers after its status line."""
        if not self.spliced:
            chunk = self.unsent + chunk
            cut = chunk.find(b"\r\n") + 2
            if cut == 1:
                self.unsent = chunk
                return
            ours = self.replica.reply_headers[self.cold] + b"%s: %s\r\n" % self.trace.reply_header()
            if not self.keep_alive or self.closing:
                ours += b"connection: close\r\n"
            chunk = chunk[:cut] + ours + chunk[cut:]
            self.spliced = True
        if not self.lost:
            self.transport.write(chunk)

    def end(self, reusable: bool) -> None:
        if not reusable:  # the replica's reply said `Connection: close`, and the caller read it
            self.keep_alive = False
        self._finish()

    def failed(self, exc: BaseException) -> None:
        self.upstream = None
        self.deadline = None
        if self.status is None:
            self._reply(replica_failed(self.fleet, self.replica, exc))
        else:  # cut off mid-reply: the caller must see a truncated response, not a short one
            self.keep_alive = False
            if not self.lost:
                self.transport.abort()
            self._finish()

    # -- answering ---------------------------------------------------------------------------

    def _reply(self, refusal: Refusal) -> None:
        """An answer of the platform's own after a replica was acquired (502, 504)."""
        self.status = refusal.status
        self._write_refusal(refusal)
        self._finish()

    def _refuse(self, refusal: Refusal, *, close: bool = False) -> None:
        """An answer of the platform's own, no replica involved."""
        if close:
            self.keep_alive = False
        self.status = refusal.status
        self._write_refusal(refusal)
        self._done()

    def _write_refusal(self, refusal: Refusal) -> None:
        if self.lost:
            return
        body = error_body(refusal.detail)
        head = [status_line(refusal.status), b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)]
        head += [b"%s: %s\r\n" % header for header in refusal.headers]
        if self.trace is not None:
            head.append(b"%s: %s\r\n" % self.trace.reply_header())
        if not self.keep_alive or self.closing:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head) + body)

    def _finish(self) -> None:
        """The exchange is over: free the replica's slot and count it."""
        if self.replica is not None:
            self.fleet.release(self.replica)
            self.platform.metrics.invoked(self.fleet.name, self.status or 500, time.perf_counter() - self.started, self.cold)
            if self.trace.span is not None:
                self.platform.tracing.end(self.trace, self.status or 500, self.replica, self.cold)
            self.replica = None
        self._done()

    def _done(self) -> None:
        if self.trace is not None and self.trace.span is not None:  # refused, stored as a job, or abandoned
            self.platform.tracing.end(self.trace, self.status or 0)
        unread = not self.complete  # answered (refused) before the whole request came
        self._new_request()
        self.state = IDLE
        if self.lost:
            self.deadlines.discard(self)
            return
        if not self.keep_alive or self.closing:
            if unread and self.transport.can_write_eof():
                self._linger()
            else:
                self.transport.close()
            return
        if self.pending:
            self.transport.resume_reading()  # paused while the next request waited
            self._start_next()
        else:
            self.idle_since = self.loop.time()

    def _linger(self) -> None:
        """Close only our side, then read and drop what still comes for a while (nginx's
        lingering close). Closing a socket with unread bytes makes the kernel send a reset,
        and a client that writes its whole body before reading (http.client, requests) then
        reports "connection reset" instead of the 413 that was sent."""
        self.state = LINGERING
        self.deadlines.discard(self)
        self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
