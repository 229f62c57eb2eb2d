"""`lepton up`: run the embedded platform in the foreground."""

from __future__ import annotations

import ipaddress
import logging
from functools import partial

import uvicorn

from lepton.runtime.server import configure_logging
from lepton.settings import lepton_home
from lepton_platform.app import build_app
from lepton_platform.connection import Deadlines, PlatformConnection

logger = logging.getLogger("lepton.platform")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run(host: str = "127.0.0.1", port: int = 8765, *, fork: bool = True, log_level: str = "info") -> None:
    configure_logging(log_level)
    home = lepton_home()
    shown = f"[{host}]" if ":" in host else host
    app, platform = build_app(home, fork=fork, url=f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}")
    if not is_loopback(host):
        logger.warning("listening on %s without TLS: tokens cross the network in clear text; put a TLS proxy in front", host)
    logger.info("state in %s; admin token in %s", home, home / "token")
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http=partial(PlatformConnection, platform, Deadlines()), ws="websockets-sansio", lifespan="on",
        log_level=log_level, access_log=False, log_config=None, timeout_graceful_shutdown=30,
    )
