"""Serve one function with uvicorn; the process exits 3 when `setup()` fails."""

from __future__ import annotations

import logging
import os
import socket

import uvicorn

from lepton.functions import Function
from lepton.runtime.app import build_app

SETUP_FAILED = 3

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "info") -> None:
    """Plain log lines; a replica prefixes them with its id so merged logs stay readable."""
    replica = os.environ.get("LEPTON_REPLICA")
    fmt = f"%(asctime)s {replica} %(levelname)s %(name)s: %(message)s" if replica else LOG_FORMAT
    logging.basicConfig(level=level.upper(), format=fmt, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per proxied request is noise


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
    if uds and uds.startswith("@"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("\0" + uds[1:])
    failures: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_fatal(exc: BaseException) -> None:
        failures.append(exc)
        if server is not None:
            server.should_exit = True

    app = build_app(fn, on_fatal=on_fatal)
    config = uvicorn.Config(
        app, host=host, port=port, uds=None if sock is not None else uds, loop="uvloop", http="httptools", lifespan="on",
        log_level=log_level, access_log=access_log, log_config=None, timeout_graceful_shutdown=30,
        # On a Unix socket the platform is the only client: keep its pooled connections open.
        timeout_keep_alive=3600 if uds else 5,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock] if sock is not None else None)
    return SETUP_FAILED if failures else 0
