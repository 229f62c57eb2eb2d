"""Pooled keep-alive HTTP/1.1 connections from the platform to one replica's Unix socket.

The invocation fast path (`connection.py`) writes a whole request in one go and gets the
reply back on a `Sink` as the raw bytes read, one call per read, so it can pass them on in
one write each. httptools (the parser uvicorn uses) only finds where a reply ends; a client
that parses every header, as aiohttp does, costs about as much CPU as the replica itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

import aiohttp
import httptools
from aiohttp.client_exceptions import UnixClientConnectorError

ProtocolT = TypeVar("ProtocolT", bound=asyncio.BaseProtocol)


class Sink(Protocol):
    def head(self, status: int) -> None:
        """The reply's head has been parsed (it is in the bytes given to `data`)."""

    def data(self, chunk: bytes) -> None:
        """Raw bytes of the reply, as read from the socket: head, framing and all."""

    def end(self, reusable: bool) -> None:
        """The reply is complete; `reusable` is False when the replica closes the connection."""

    def failed(self, exc: BaseException) -> None:
        """The connection broke before the reply was complete."""


class ReplicaConnection(asyncio.Protocol):
    """One exchange at a time; back to its pool after a complete reply. The parser only
    finds where a reply's head and end are: the bytes themselves go through untouched."""

    transport: asyncio.Transport  # from connection_made, which comes before anything else

    def __init__(self, pool: ReplicaPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.complete = False
        self.keep_alive = True

    def send(self, request: bytes, sink: Sink) -> None:
        self.sink = sink
        self.transport.write(request)

    def abort(self) -> None:
        """Drop the exchange and the connection: the replica sees the caller go away."""
        self.sink = None
        self.transport.abort()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's

    def data_received(self, data: bytes) -> None:
        sink = self.sink
        if sink is None:  # nothing was asked: the replica is confused; start afresh next time
            self.transport.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.sink = None
            self.transport.abort()
            sink.failed(exc)
            return
        sink.data(data)
        if self.complete:
            self.complete = False
            self.sink = None
            if self.keep_alive:
                self.pool.put_back(self)
            else:
                self.transport.close()
            sink.end(self.keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.failed(exc or ConnectionResetError("the replica closed the connection"))

    # -- httptools callbacks --------------------------------------------------------------

    def on_headers_complete(self) -> None:
        sink = self.sink
        assert sink is not None  # the parser is fed only while a sink waits for the reply
        sink.head(self.parser.get_status_code())

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # only valid inside the callback


class ReplicaPool:
    def __init__(self, path: str) -> None:
        self.path = path
        self.idle: list[ReplicaConnection] = []
        self.open: set[ReplicaConnection] = set()

    def take(self) -> ReplicaConnection | None:
        """An idle connection, or None: then `connect()`."""
        while self.idle:
            connection = self.idle.pop()
            if not connection.transport.is_closing():
                return connection
        return None

    async def connect(self) -> ReplicaConnection:
        _, connection = await open_unix(lambda: ReplicaConnection(self), self.path)
        self.open.add(connection)
        return connection

    def put_back(self, connection: ReplicaConnection) -> None:
        self.idle.append(connection)

    def forget(self, connection: ReplicaConnection) -> None:
        self.open.discard(connection)
        if connection in self.idle:
            self.idle.remove(connection)

    def close(self) -> None:
        for connection in list(self.open):
            connection.transport.close()
        self.idle.clear()


def socket_address(name: str) -> str:
    """A replica listens on an abstract Unix socket ('@name' is written as in `ss`): no file
    for another replica to find, and Landlock keeps sandboxed replicas from connecting to any
    abstract socket but their own (isolation.py)."""
    return "\0" + name[1:] if name.startswith("@") else name


async def open_unix(factory: Callable[[], ProtocolT], address: str) -> tuple[asyncio.BaseTransport, ProtocolT]:
    """`loop.create_unix_connection` for any address: uvloop refuses abstract socket names
    (EINVAL), where replicas listen, so the socket is connected here and handed over."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
        return await loop.create_unix_connection(factory, sock=sock)
    except BaseException:
        sock.close()
        raise


class ReplicaConnector(aiohttp.UnixConnector):
    """aiohttp's Unix connector, connecting through `open_unix` (it overrides the one method
    aiohttp documents for connectors to implement, and raises the same error)."""

    async def _create_connection(self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        try:
            async with asyncio.timeout(timeout.sock_connect):
                _, protocol = await open_unix(self._factory, self.path)
        except OSError as exc:
            raise UnixClientConnectorError(self.path, req.connection_key, exc) from exc
        return protocol
