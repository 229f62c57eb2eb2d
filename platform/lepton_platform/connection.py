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
from collections.abc import Coroutine
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lepton_platform.activator import acquire
from lepton_platform.asgi import Refusal, error_body
from lepton_platform.fleet import Fleet
from lepton_platform.jobs.runner import QueueFull
from lepton_platform.proxy import DROP_REQUEST, no_answer, replica_failed
from lepton_platform.router import NOT_KEPT, PREFIX, TAG_HEADER, accepted, admit, job_refused, wants_async
from lepton_platform.tunnel import Tunnel
from lepton_platform.upstream import ReplicaConnection, open_unix

if TYPE_CHECKING:
    from lepton_platform.handoff import HandoffChannel
    from lepton_platform.replicas import Replica
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
    path, mark, query = url[len(PREFIX) :].partition(b"?")
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


class Exchange:
    """One request on the fast path and its reply (uvicorn's `RequestResponseCycle`). The
    connection holds a fresh one for each request, so nothing of a request's state is left
    for the next; a task that outlives its exchange (a timeout, a hang-up) sees that it is no
    longer the connection's."""

    __slots__ = (
        "name",
        "method",
        "url",
        "forwarded",
        "dropped",
        "job",
        "websocket",
        "received",
        "size",
        "complete",
        "refusal",
        "fleet",
        "trace",
        "waiting",
        "started",
        "replica",
        "cold",
        "upstream",
        "deadline",
        "status",
        "unsent",
        "spliced",
        "upgraded",
    )

    def __init__(self) -> None:
        # The request, as it is read.
        self.name = ""  # of the function it is for
        self.method = self.url = b""
        self.forwarded: list[bytes] = []  # header lines the replica gets
        self.dropped: dict[bytes, bytes] = {}  # the rest, by lower-case name
        self.job = False  # `Prefer: respond-async`
        self.websocket = False
        self.received: list[bytes] = []  # the body
        self.size = 0
        self.complete = False
        self.refusal: Refusal | None = None  # the platform's answer instead of a replica's
        # Once admitted: who serves it.
        self.fleet: Fleet | None = None
        self.trace: Trace | None = None
        self.waiting: asyncio.Task[None] | None = None  # while it waits for a replica (activator)
        self.started = 0.0
        self.replica: Replica | None = None
        self.cold = False
        # The reply.
        self.upstream: ReplicaConnection | Tunnel | None = None
        self.deadline: float | None = None  # for the replica's reply to begin
        self.status: int | None = None
        self.unsent = b""  # the start of a reply whose status line is not all here yet
        self.spliced = False
        self.upgraded = b""  # what came after the upgrade request's head, for the tunnel


class PlatformConnection(asyncio.Protocol):
    """uvicorn builds one per accepted connection (`uvicorn.Config(http=...)`). It keeps what
    outlives a request (the transport, the parser, keep-alive, bytes read ahead); the request
    in hand is its `exchange`."""

    transport: asyncio.Transport  # from connection_made, which comes before anything else
    tunnel: Tunnel  # the WebSocket's, from when `state` is TUNNEL (the exchange's `upstream` too)

    def __init__(
        self,
        platform: Platform,
        deadlines: Deadlines,
        *,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
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
        self.state = IDLE
        self.pending = b""  # read but not parsed: a request line being peeked at, or the next request
        self.keep_alive = True
        self.closing = False
        self.lost = False
        self.idle_since: float | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.exchange = Exchange()

    # -- asyncio.Protocol, reading side ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's
        self.server_state.connections.add(self)
        self.deadlines.add(self)
        self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.server_state.connections.discard(self)
        if self.state != BUSY:
            self.deadlines.discard(self)  # a busy one keeps its timeout until the replica answers
        exchange = self.exchange
        if self.state == TUNNEL:
            self.tunnel.close()  # its connection_lost finishes the exchange
        elif self.state == BUSY and exchange.upstream is not None and exchange.status is not None:
            exchange.upstream.abort()  # a reply streaming to nobody: stop it
            self._finish()
        elif exchange.waiting is not None and not exchange.waiting.done():
            exchange.waiting.cancel()  # still waiting for a replica: leave the queue
        # Otherwise the exchange runs to its end (or timeout) and frees the replica then.

    def data_received(self, data: bytes) -> None:
        if self.state == LINGERING:
            return  # the rest of a refused request's body
        self.idle_since = None
        if self.state == TUNNEL:
            self.tunnel.write(data)
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
        upstream = self.exchange.upstream
        if upstream is not None:
            upstream.pause_reading()

    def resume_writing(self) -> None:
        upstream = self.exchange.upstream
        if upstream is not None:
            upstream.resume_reading()

    def _start_next(self) -> None:
        """Peek at the request line of the request `pending` starts with: ours or uvicorn's."""
        data = self.pending
        end = data.find(b"\r\n", 0, MAX_REQUEST_LINE)
        if end < 0 and len(data) < MAX_REQUEST_LINE:
            return  # the rest of the line is still on its way
        name = self._invocation(data[:end]) if end >= 0 else None
        if name is None:
            self._hand_over()
            return
        self.exchange.name = name
        self.pending = b""
        self.state = READING
        self._feed(data)

    def _invocation(self, line: bytes) -> str | None:
        """The function's name when the request line is one for the fast path (whose method
        and target are kept; the parser checks them as it reads the same line)."""
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] not in METHODS or parts[2] != b"HTTP/1.1" or not parts[1].startswith(b"/fn/"):
            return None
        self.exchange.method, self.exchange.url = parts[0], parts[1]
        name = parts[1][len(PREFIX) :].split(b"/", 1)[0].split(b"?", 1)[0].decode("latin-1")
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
        exchange = self.exchange
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.keep_alive = False  # after a tunnel, or an upgrade that is not a WebSocket's (plain HTTP), close
            exchange.upgraded = data[exc.args[0] :] if exchange.websocket else b""
        except httptools.HttpParserError as exc:
            if exchange.complete:
                self.keep_alive = False  # a pipelined request follows: see the module docstring
            elif exchange.refusal is not None:  # refused before the body was read
                self._refuse(exchange.refusal, close=True)
                return
            elif isinstance(exc, httptools.HttpParserCallbackError):
                logger.error("invocation failed in the platform", exc_info=exc.__context__ or exc)
                self._refuse(Refusal(500, "internal error in the platform; its log has the traceback"), close=True)
                return
            else:
                self._refuse(Refusal(400, f"malformed request: {exc}"), close=True)
                return
        if exchange.complete:
            self.state = BUSY
            self._dispatch()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.exchange.complete:
            raise Stop("pipelined request")

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered in DROP_REQUEST:
            self.exchange.dropped[lowered] = value
        else:
            self.exchange.forwarded.append(b"%s: %s\r\n" % (name, value))
            if lowered == b"prefer" and wants_async(value.decode("latin-1")):
                self.exchange.job = True

    def on_headers_complete(self) -> None:
        exchange, dropped = self.exchange, self.exchange.dropped
        authorization, content_length = dropped.get(b"authorization"), dropped.get(b"content-length")
        expect = dropped.get(b"expect", b"").lower()
        # A WebSocket only with `Connection: Upgrade` too: the parser then hands over what follows.
        exchange.websocket = dropped.get(b"upgrade", b"").lower() == b"websocket" and self.parser.should_upgrade()
        tag = dropped.get(TAG_HEADER)
        admitted = admit(
            self.platform,
            exchange.name,
            exchange.method.decode("latin-1"),
            None if authorization is None else authorization.decode("latin-1"),
            None if content_length is None else content_length.decode("latin-1"),
            websocket=exchange.websocket,
            tag=None if tag is None else tag.decode("latin-1"),
        )
        if isinstance(admitted, Refusal):
            exchange.refusal = admitted
            if admitted.status == 413 or expect == b"100-continue":
                raise Stop(admitted.detail)  # answer now, without reading the body
            return
        exchange.fleet = admitted
        traceparent, tracestate = dropped.get(b"traceparent"), dropped.get(b"tracestate")
        exchange.trace = self.platform.tracing.invocation(
            admitted.name,
            None if traceparent is None else traceparent.decode("latin-1"),
            None if tracestate is None else tracestate.decode("latin-1"),
        )
        if expect == b"100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        exchange = self.exchange
        if exchange.refusal is not None:
            return  # read and dropped, so the connection stays usable
        exchange.size += len(body)
        if exchange.size > self.limit:
            fleet = exchange.fleet
            assert fleet is not None  # admitted, as it is not refused
            exchange.refusal = Refusal(413, f"request body is over the {self.limit} byte limit for function {fleet.name!r}")
            raise Stop(exchange.refusal.detail)
        exchange.received.append(body)

    def on_message_complete(self) -> None:
        self.exchange.complete = True
        if not self.parser.should_keep_alive():
            self.keep_alive = False

    # -- forwarding ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        exchange = self.exchange
        if exchange.refusal is not None:
            self._refuse(exchange.refusal)
            return
        fleet, trace = exchange.fleet, exchange.trace
        assert fleet is not None and trace is not None  # admitted, as it is not refused
        if exchange.job and not exchange.websocket:
            self._spawn(self._submit(exchange, fleet, trace))
            return
        exchange.started = time.perf_counter()
        replica = fleet.try_acquire()
        if replica is not None:
            self._forward(replica, False, fleet, trace)
        else:
            exchange.waiting = self._spawn(self._wait_for_replica(fleet, trace))

    async def _wait_for_replica(self, fleet: Fleet, trace: Trace) -> None:
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
            replica, cold = acquired
            self._forward(replica, cold, fleet, trace)

    async def _submit(self, exchange: Exchange, fleet: Fleet, trace: Trace) -> None:
        """Store the request as an async job; 202 once it is stored."""
        kept = [line[:-2].decode("latin-1").split(": ", 1) for line in exchange.forwarded]
        headers = [(name.lower(), value) for name, value in kept if name.lower() not in NOT_KEPT] + trace.headers()
        try:
            job = await self.platform.jobs.submit(
                fleet.spec, exchange.method.decode("latin-1"), exchange.url.decode("latin-1"), headers, b"".join(exchange.received)
            )
        except (OSError, sqlite3.Error, QueueFull) as exc:
            self._refuse(job_refused(exc))
            return
        head, body = accepted(job)
        exchange.status = 202
        if not self.lost:
            close = [] if self.keep_alive and not self.closing else [b"connection: close\r\n"]
            self.transport.write(
                b"".join([status_line(202), *(b"%s: %s\r\n" % h for h in (*head, trace.reply_header())), *close, b"\r\n", body])
            )
        self._done()

    @staticmethod
    def _head(exchange: Exchange, trace: Trace) -> bytes:
        """The request line and headers as the replica gets them."""
        return b"".join(
            [
                b"%s %s HTTP/1.1\r\nhost: replica\r\nx-forwarded-prefix: %s%s\r\n"
                % (exchange.method, replica_target(exchange.url), PREFIX.encode(), exchange.name.encode()),
                trace.head(),
                *exchange.forwarded,
            ]
        )

    def _forward(self, replica: Replica, cold: bool, fleet: Fleet, trace: Trace) -> None:
        exchange = self.exchange
        exchange.replica, exchange.cold = replica, cold
        if exchange.websocket:
            exchange.deadline = self.loop.time() + fleet.spec.timeout + 5  # to connect, then for the answer to the upgrade
            handoff = replica.handoff
            self._spawn(
                self._hand_over_socket(replica, handoff, exchange, fleet, trace) if handoff else self._open_tunnel(replica, exchange, trace)
            )
            return
        body = b"".join(exchange.received)
        request = b"".join([self._head(exchange, trace), b"content-length: %d\r\n\r\n" % len(body), body])
        exchange.deadline = self.loop.time() + fleet.spec.timeout + 5
        upstream = replica.pool.take()
        if upstream is not None:
            exchange.upstream = upstream
            upstream.send(request, self)
        else:
            self._spawn(self._connect(replica, request, exchange))

    async def _hand_over_socket(self, replica: Replica, handoff: HandoffChannel, exchange: Exchange, fleet: Fleet, trace: Trace) -> None:
        """Give the caller's socket to the replica (handoff.py): the platform leaves the data
        path. The slot stays taken until the replica says the socket closed. Where it cannot
        be handed over, the tunnel carries it."""
        try:
            async with asyncio.timeout(5):
                await handoff.connect()
        except (OSError, TimeoutError) as exc:
            logger.warning("replica %s takes no handed-over WebSockets (%s); tunnelling them", replica.id, str(exc) or "no answer")
            replica.handoff = None  # its next ones go straight to the tunnel
            await self._open_tunnel(replica, exchange, trace)
            return
        if self.exchange is not exchange:  # timed out meanwhile: answered, and the slot freed
            return
        if self.lost:
            self._finish()
            return
        # From here to the abort nothing awaits: the caller's bytes go either all to the replica or all through us.
        self.transport.pause_reading()  # what was read goes along; the replica reads the rest itself
        head = b"".join(
            [
                self._head(exchange, trace),
                b"connection: Upgrade\r\nupgrade: %s\r\n\r\n" % exchange.dropped[b"upgrade"],
                exchange.upgraded,
                self.pending,
            ]
        )
        cold, started, metrics = exchange.cold, exchange.started, self.platform.metrics

        def closed() -> None:
            fleet.release(replica)
            metrics.invoked(fleet.name, 101, time.perf_counter() - started, cold)

        fd = os.dup(self.transport.get_extra_info("socket").fileno())
        try:
            handoff.send(fd, head, closed)
        except OSError as exc:
            logger.info("WebSocket to %s not handed over (%s); tunnelling it", replica.id, exc)
            self.transport.resume_reading()
            await self._open_tunnel(replica, exchange, trace)
            return
        finally:
            os.close(fd)
        self.platform.tracing.end(trace, 101, replica, exchange.cold)
        exchange.replica = None  # the slot is `closed`'s to free now
        self.state = HANDED
        exchange.deadline = None
        self.transport.abort()  # our copy only: the connection lives on in the replica

    async def _open_tunnel(self, replica: Replica, exchange: Exchange, trace: Trace) -> None:
        upgrade = exchange.dropped[b"upgrade"]
        try:
            _, tunnel = await open_unix(lambda: Tunnel(self), replica.pool.path)
        except OSError as exc:
            if self.exchange is exchange:
                self.failed(exc)
            return
        if self.exchange is not exchange:  # timed out meanwhile: the exchange is over
            tunnel.close()
            return
        if self.lost:  # the caller went away meanwhile
            tunnel.close()
            self._finish()
            return
        exchange.upstream = self.tunnel = tunnel
        self.state = TUNNEL
        # With what the caller sent after its request, and while we connected (reading paused).
        tunnel.write(
            b"".join(
                [self._head(exchange, trace), b"connection: Upgrade\r\nupgrade: %s\r\n\r\n" % upgrade, exchange.upgraded, self.pending]
            )
        )
        exchange.upgraded = self.pending = b""
        self.transport.resume_reading()

    # -- tunnel.Peer: a WebSocket's bytes from the replica ------------------------------------

    def tunnel_data(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange.status is None:  # the replica's answer to the upgrade: 101, or a refusal
            exchange.deadline = None
            exchange.status = int(data[9:12]) if data[9:12].isdigit() else 502
        if not self.lost:
            self.transport.write(data)

    def tunnel_closed(self) -> None:
        if self.state != TUNNEL:
            return
        exchange = self.exchange
        exchange.upstream = None
        if exchange.status is None:
            self._reply(replica_failed(exchange.fleet, exchange.replica, ConnectionResetError("closed before answering the upgrade")))
            return
        self._finish()

    async def _connect(self, replica: Replica, request: bytes, exchange: Exchange) -> None:
        try:
            upstream = await replica.pool.connect()
        except OSError as exc:
            if self.exchange is exchange:
                self.failed(exc)
            return
        if self.exchange is not exchange:  # timed out meanwhile
            replica.pool.put_back(upstream)
            return
        exchange.upstream = upstream
        upstream.send(request, self)

    def check_deadlines(self, now: float) -> None:
        deadline = self.exchange.deadline
        if deadline is not None and now >= deadline:
            self._timed_out()
        elif self.idle_since is not None and now - self.idle_since >= self.config.timeout_keep_alive:
            self.transport.close()

    def _timed_out(self) -> None:
        exchange = self.exchange
        exchange.deadline = None
        if exchange.upstream is not None:
            exchange.upstream.abort()
        self._reply(no_answer(exchange.fleet))

    # -- upstream.Sink: the replica's reply, on its way back -------------------------------

    def head(self, status: int) -> None:
        exchange = self.exchange
        exchange.deadline = None
        exchange.status = status

    def data(self, chunk: bytes) -> None:
        """Pass the reply through as it comes, with our headers after its status line."""
        exchange = self.exchange
        if not exchange.spliced:
            chunk = exchange.unsent + chunk
            cut = chunk.find(b"\r\n") + 2
            if cut == 1:
                exchange.unsent = chunk
                return
            replica, trace = exchange.replica, exchange.trace
            assert replica is not None and trace is not None  # forwarded to a replica, which answers
            ours = replica.reply_headers[exchange.cold] + b"%s: %s\r\n" % trace.reply_header()
            if not self.keep_alive or self.closing:
                ours += b"connection: close\r\n"
            chunk = chunk[:cut] + ours + chunk[cut:]
            exchange.spliced = True
        if not self.lost:
            self.transport.write(chunk)

    def end(self, reusable: bool) -> None:
        if not reusable:  # the replica's reply said `Connection: close`, and the caller read it
            self.keep_alive = False
        self._finish()

    def failed(self, exc: BaseException) -> None:
        exchange = self.exchange
        exchange.upstream = None
        exchange.deadline = None
        if exchange.status is None:
            self._reply(replica_failed(exchange.fleet, exchange.replica, exc))
        else:  # cut off mid-reply: the caller must see a truncated response, not a short one
            self.keep_alive = False
            if not self.lost:
                self.transport.abort()
            self._finish()

    # -- answering ---------------------------------------------------------------------------

    def _reply(self, refusal: Refusal) -> None:
        """An answer of the platform's own after a replica was acquired (502, 504)."""
        self.exchange.status = refusal.status
        self._write_refusal(refusal)
        self._finish()

    def _refuse(self, refusal: Refusal, *, close: bool = False) -> None:
        """An answer of the platform's own, no replica involved."""
        if close:
            self.keep_alive = False
        self.exchange.status = refusal.status
        self._write_refusal(refusal)
        self._done()

    def _write_refusal(self, refusal: Refusal) -> None:
        if self.lost:
            return
        body = error_body(refusal.detail)
        head = [status_line(refusal.status), b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)]
        head += [b"%s: %s\r\n" % header for header in refusal.headers]
        trace = self.exchange.trace
        if trace is not None:
            head.append(b"%s: %s\r\n" % trace.reply_header())
        if not self.keep_alive or self.closing:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self.transport.write(b"".join(head) + body)

    def _finish(self) -> None:
        """The exchange is over: free the replica's slot and count it."""
        exchange = self.exchange
        replica = exchange.replica
        if replica is not None:
            fleet, trace = exchange.fleet, exchange.trace
            assert fleet is not None and trace is not None  # admitted before a replica was acquired
            fleet.release(replica)
            self.platform.metrics.invoked(fleet.name, exchange.status or 500, time.perf_counter() - exchange.started, exchange.cold)
            if trace.span is not None:
                self.platform.tracing.end(trace, exchange.status or 500, replica, exchange.cold)
            exchange.replica = None
        self._done()

    def _done(self) -> None:
        exchange = self.exchange
        if exchange.trace is not None and exchange.trace.span is not None:  # refused, stored as a job, or abandoned
            self.platform.tracing.end(exchange.trace, exchange.status or 0)
        unread = not exchange.complete  # answered (refused) before the whole request came
        self.exchange = Exchange()
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

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task
