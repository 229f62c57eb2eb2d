"""Serve one function with uvicorn; the process exits 3 when `setup()` fails."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import TYPE_CHECKING, Any

import uvicorn
import uvloop

from lepton.functions import Function
from lepton.handlers import ASGI
from lepton.runtime import logstamp
from lepton.runtime.app import build_app

if TYPE_CHECKING:
    from lepton.runtime.handoff import Handoff

SETUP_FAILED = 3
PEER_UID_ENV = "LEPTON_PLATFORM_UID"

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STAMPED_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    """Plain log lines; in a replica whose output is stamped (logstamp.py) the stamp has the
    time and the replica's id."""
    logging.basicConfig(level=level.upper(), format=STAMPED_FORMAT if logstamp.active() else LOG_FORMAT, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request is noise


PEER = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The user of the process at the other end of a Unix socket."""
    pid_uid_gid: tuple[int, int, int] = PEER.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEER.size))
    return pid_uid_gid[1]


def only_from(uid: int) -> type:
    """uvicorn's HTTP protocol, closing connections from processes of any other user. An
    abstract socket has no file permissions: any process on the machine may connect to it.
    A WebSocket upgrade hands the same, already checked, transport to uvicorn's WebSocket
    protocol."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class PeerChecked(HttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if peer_uid(transport.get_extra_info("socket")) != uid:
                transport.abort()

    return PeerChecked


def serve(
    fn: Function,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    sock: socket.socket | None = None,
    uds: str | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> int:
    """Run until stopped; returns the process exit code. A `uds` of '@name' is an abstract
    Unix socket (Linux), the way the embedded platform's replicas listen."""
    http: Any = "httptools"
    if uds and uds.startswith("@"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("\0" + uds[1:])
        if os.environ.get(PEER_UID_ENV):
            http = only_from(int(os.environ[PEER_UID_ENV]))
    failures: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_fatal(exc: BaseException) -> None:
        failures.append(exc)
        if server is not None:
            server.should_exit = True

    app = build_app(fn, on_fatal=on_fatal)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        uds=None if sock is not None else uds,
        loop="uvloop",
        http=http,
        lifespan="on",
        # Only ASGI apps take WebSockets; other functions never import a WebSocket library.
        ws="websockets-sansio" if fn.signature.kind == ASGI else "none",
        log_level=log_level,
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=30,
        # On a Unix socket the platform is the only client: keep its pooled connections open.
        timeout_keep_alive=3600 if uds else 5,
    )
    server = uvicorn.Server(config)
    if uds and uds.startswith("@") and fn.signature.kind == ASGI:  # behind the platform: WebSockets come handed over
        from lepton.runtime.handoff import SUFFIX, Handoff

        config.load()
        uid = os.environ.get(PEER_UID_ENV)
        handoff = Handoff(server, uds + SUFFIX, int(uid) if uid else None, fn.spec.timeout)
        uvloop.run(_serve_with(server, sock, handoff))
    else:
        server.run(sockets=[sock] if sock is not None else None)
    return SETUP_FAILED if failures else 0


async def _serve_with(server: uvicorn.Server, sock: socket.socket | None, handoff: Handoff) -> None:
    accepting = asyncio.create_task(handoff.serve())
    try:
        await server.serve(sockets=[sock] if sock is not None else None)
    finally:
        accepting.cancel()
