"""The floor for any proxy hop written in Python: relay bytes between a TCP port and a Unix
socket, one upstream connection per client, no parsing, no routing, no auth (uvloop, like the
platform). tests/bench/router_overhead.py runs it beside the platform's /fn path.

    python tests/bench/apps/byte_pipe.py UPSTREAM.sock PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from lepton_platform.upstream import open_unix, socket_address


class Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    def __init__(self, path: str) -> None:
        self.path = path
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(self.connect())

    async def connect(self) -> None:
        self.upstream, _ = await open_unix(lambda: Upstream(self.transport), socket_address(self.path))
        self.upstream.write(b"".join(self.early))

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def main(path: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: Client(path), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
