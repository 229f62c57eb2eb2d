"""WebSockets the platform hands over whole. Behind the platform, an ASGI function's replica
also listens on `@NAME.ws`, a SOCK_SEQPACKET socket beside its HTTP one. For a WebSocket it
has admitted, the platform sends the caller's socket there (SCM_RIGHTS) with the bytes it has
read of it, the upgrade request first, and forgets the socket: from then on the replica and
the caller talk directly, with no hop and no copy per message. The replica says `closed` with
the socket's id on the same channel when the connection ends, and the platform frees the slot
the socket held.

A handed connection serves that one request: if the app answers with plain HTTP (it refused
the WebSocket), the connection closes after the response, so nothing else reaches the replica
without passing the platform's checks.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import struct
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lepton.runtime.server import peer_uid

logger = logging.getLogger("lepton.runtime")
SUFFIX = ".ws"
ID = struct.Struct(">Q")
MAX_MESSAGE = 1 << 20  # the platform reads at most 1 MiB of a request head (and early frames)


class Handoff:
    """The replica's side: adopt handed sockets into uvicorn as if they had been accepted."""

    def __init__(self, server: uvicorn.Server, address: str, platform_uid: int | None, handshake_timeout: float) -> None:
        """Bind `address` ('@name', abstract) now, so it is there once the replica is ready.
        A handed connection the app has neither upgraded nor answered within
        `handshake_timeout` seconds is closed (the platform no longer watches it)."""
        self.server = server
        self.platform_uid = platform_uid
        self.handshake_timeout = handshake_timeout
        self.open: dict[Any, tuple[socket.socket, int]] = {}  # transport -> (channel, id)
        self.http_class, self.ws_class = self._protocols()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind("\0" + address[1:])
        self.listener.listen(8)
        self.listener.setblocking(False)

    def _protocols(self) -> tuple[type, type]:
        handoff = self
        config = self.server.config

        class HandedWebSocket(config.ws_protocol_class):  # type: ignore[misc, name-defined]
            def connection_lost(self, exc: Exception | None) -> None:
                try:
                    super().connection_lost(exc)
                finally:
                    handoff.closed(self.transport)

        class HandedHttp(HttpToolsProtocol):
            def __init__(self, *args: Any, head: bytes, channel: socket.socket, ident: int, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.ws_protocol_class = HandedWebSocket
                self.head, self.channel, self.ident = head, channel, ident

            def connection_made(self, transport: Any) -> None:
                # Before the socket is first read: what the platform read of it comes first.
                super().connection_made(transport)
                handoff.open[transport] = (self.channel, self.ident)
                self.loop.call_later(handoff.handshake_timeout, self._handshake_over)
                head, self.head = self.head, b""
                self.data_received(head)

            def _handshake_over(self) -> None:
                if self.transport.get_protocol() is self and not self.transport.is_closing():
                    self.transport.close()  # neither upgraded nor answered in time

            def on_response_complete(self) -> None:
                super().on_response_complete()
                self.transport.close()  # one request per handed connection

            def connection_lost(self, exc: Exception | None) -> None:
                try:
                    super().connection_lost(exc)
                finally:
                    handoff.closed(self.transport)  # it ended before any upgrade

        return HandedHttp, HandedWebSocket

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            channel, _ = await loop.sock_accept(self.listener)
            if self.platform_uid is not None and peer_uid(channel) != self.platform_uid:
                channel.close()  # an abstract socket has no permissions: only the platform may hand sockets over
                continue
            channel.setblocking(False)
            loop.add_reader(channel.fileno(), self._receive, channel)

    def _receive(self, channel: socket.socket) -> None:
        try:
            # Close-on-exec: a process the app starts must not keep the caller's connection open.
            data, ancillary, _, _ = channel.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(array.array("i").itemsize), socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        fds = array.array("i")
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        if not data:  # the platform went away: its handed sockets stay ours until they close
            asyncio.get_running_loop().remove_reader(channel.fileno())
            channel.close()
            for fd in fds:
                os.close(fd)
            return
        if len(fds) != 1 or len(data) < ID.size:
            for fd in fds:
                os.close(fd)
            # No socket came (e.g. this process is out of descriptors): the platform frees its slot.
            logger.error("[%s] a handoff came with %d sockets; not served", os.getpid(), len(fds))
            if len(data) >= ID.size:
                self._say_closed(channel, ID.unpack_from(data)[0])
            return
        asyncio.get_running_loop().create_task(self._adopt(channel, ID.unpack_from(data)[0], fds[0], data[ID.size :]))

    async def _adopt(self, channel: socket.socket, ident: int, fd: int, head: bytes) -> None:
        server = self.server
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            os.close(fd)
            self._say_closed(channel, ident)
            return
        try:
            protocol = self.http_class(
                config=server.config,
                server_state=server.server_state,
                app_state=server.lifespan.state,
                head=head,
                channel=channel,
                ident=ident,
            )
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, sock=sock)
        except BaseException:
            sock.close()
            self._say_closed(channel, ident)
            raise

    def closed(self, transport: Any) -> None:
        entry = self.open.pop(transport, None)
        if entry is not None:
            self._say_closed(*entry)

    @staticmethod
    def _say_closed(channel: socket.socket, ident: int) -> None:
        try:
            channel.send(b"closed" + ID.pack(ident))
        except OSError:
            pass  # the platform is gone, and with it what it counted
