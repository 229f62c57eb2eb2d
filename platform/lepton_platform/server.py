"""`lepton up`: run the embedded platform in the foreground."""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import logging
import os
import socket
import sys
from functools import partial
from pathlib import Path

import uvicorn
from uvicorn.config import STARTUP_FAILURE  # where uvicorn defines it (uvicorn.main only imports it)

from lepton.errors import LeptonError
from lepton.runtime.server import configure_logging
from lepton.settings import lepton_home
from lepton_platform.app import build_app
from lepton_platform.connection import Deadlines, PlatformConnection

logger = logging.getLogger("lepton.platform")
PID_FILE = "platform.pid"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class CannotStart(LeptonError):
    """The platform did not start, and changed nothing: its state or its port is taken."""


def hold_home(home: Path) -> int:
    """One platform per $LEPTON_HOME: two would run two brokers, autoscalers and stores over one
    state. An exclusive lock on `platform.pid` (PostgreSQL's postmaster.pid, without its stale
    files: the kernel drops the lock when the process ends, however it ends). Returns the open
    descriptor, which must stay open while the platform runs; it is not inherited by children."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / PID_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise CannotStart(f"another platform (pid {holder}) is running on {home}; stop it, or give this one its own LEPTON_HOME") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, before anything starts, so that a port in use is one line, not a
    platform that started and then failed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CannotStart(f"port {port} is in use on {host}; stop what holds it or pick another with --port") from None
        raise CannotStart(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def run(host: str = "127.0.0.1", port: int = 8765, *, fork: bool = True, log_level: str = "info") -> None:
    configure_logging(log_level)
    home = lepton_home()
    lock = hold_home(home)
    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    app, platform = build_app(home, fork=fork, url=f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}")
    if not is_loopback(host):
        logger.warning("listening on %s without TLS: tokens cross the network in clear text; put a TLS proxy in front", host)
    logger.info("listening on http://%s:%d; state in %s; admin token in %s", shown, port, home, home / "token")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        # uvicorn calls whatever it is given here as the protocol factory; its stubs say a class.
        http=partial(PlatformConnection, platform, Deadlines()),  # type: ignore[arg-type]
        ws="websockets-sansio",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        os.close(lock)
    if not server.started:
        sys.exit(STARTUP_FAILURE)  # as uvicorn.run: the lifespan (the platform's start) failed
