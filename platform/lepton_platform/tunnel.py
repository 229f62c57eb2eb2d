"""The replica's end of a WebSocket through the platform: once the upgrade request is sent,
bytes pass both ways untouched (frames are the replica's and the caller's business), with
back-pressure in both directions. The caller's end is its `PlatformConnection`."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast


class Peer(Protocol):
    transport: asyncio.Transport

    def tunnel_data(self, data: bytes) -> None: ...

    def tunnel_closed(self) -> None: ...


class Tunnel(asyncio.Protocol):
    transport: asyncio.Transport  # from connection_made, which comes before anything else

    def __init__(self, peer: Peer) -> None:
        self.peer = peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream's

    def data_received(self, data: bytes) -> None:
        self.peer.tunnel_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.peer.tunnel_closed()

    # The replica reads slower than the caller writes: stop reading the caller.
    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()

    # -- what the caller's side does to this one (the names a pooled connection has) --------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def abort(self) -> None:
        self.transport.abort()

    def close(self) -> None:
        self.transport.close()
