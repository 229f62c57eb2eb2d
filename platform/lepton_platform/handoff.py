"""Handing a caller's WebSocket to its replica: the platform's side of
`lepton.runtime.handoff` (which says why). One SOCK_SEQPACKET connection per replica carries
each socket (SCM_RIGHTS) with the bytes read of it, and brings back `closed` for each, which
frees the slot the socket held; if the replica dies, every socket it held counts as closed."""

from __future__ import annotations

import array
import asyncio
import itertools
import socket
from collections.abc import Callable

from lepton.runtime.handoff import ID

MAX_HEAD = 64 << 10  # more read than this before the handoff: the tunnel takes it instead


class HandoffChannel:
    def __init__(self, address: str) -> None:
        self.address = address  # '\0name.ws'
        self.sock: socket.socket | None = None
        self.waiting: dict[int, Callable[[], None]] = {}
        self._ids = itertools.count(1)
        self._connecting: asyncio.Lock | None = None

    def send(self, fd: int, head: bytes, on_closed: Callable[[], None]) -> None:
        """Send the socket `fd` (the caller keeps and closes its own copy) with `head`, the
        bytes read of it; `on_closed` runs once the replica is done with it. Needs `connect()`
        first; OSError: not sent."""
        if len(head) > MAX_HEAD:
            raise OSError(f"{len(head)} bytes read before the handoff")
        if self.sock is None:
            raise OSError("not connected")
        sock = self.sock
        ident = next(self._ids)
        self.waiting[ident] = on_closed
        try:
            sock.sendmsg([ID.pack(ident) + head], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        except OSError:
            del self.waiting[ident]
            raise

    async def connect(self) -> None:
        self._connecting = self._connecting or asyncio.Lock()
        async with self._connecting:
            if self.sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                sock.setblocking(False)
                try:
                    await asyncio.get_running_loop().sock_connect(sock, self.address)
                except BaseException:  # a timeout cancels us
                    sock.close()
                    raise
                asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)
                self.sock = sock

    def _receive(self) -> None:
        sock = self.sock
        assert sock is not None  # the reader is removed before the socket goes
        try:
            data = sock.recv(64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close()
        elif data.startswith(b"closed") and len(data) == 6 + ID.size:
            done = self.waiting.pop(ID.unpack_from(data, 6)[0], None)
            if done is not None:
                done()

    def close(self) -> None:
        """The replica is gone (or going): what it held is free."""
        if self.sock is not None:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        waiting, self.waiting = list(self.waiting.values()), {}
        for done in waiting:
            done()
