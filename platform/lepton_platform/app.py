"""Builds the platform's ASGI app: the request path for `/fn/...`, the event ingress for
`POST /v1/events`, the web console under `/ui`, the API for the rest."""

from __future__ import annotations

from pathlib import Path

from lepton_platform.activator import Activator
from lepton_platform.asgi import ASGIApp, Receive, Scope, Send
from lepton_platform.console.app import PREFIX as CONSOLE
from lepton_platform.console.app import build_console
from lepton_platform.control_api import build_api
from lepton_platform.ingress import PATH as INGRESS
from lepton_platform.ingress import Ingress
from lepton_platform.proxy import ReplicaProxy
from lepton_platform.router import PREFIX, Router
from lepton_platform.service import Platform


def build_request_path(platform: Platform) -> ASGIApp:
    """router -> activator (holds requests during scale-from-zero) -> replica proxy."""
    return Router(Activator(ReplicaProxy(), platform.metrics), platform)


def build_app(home: Path, *, fork: bool = True, url: str = "http://127.0.0.1:8765") -> tuple[ASGIApp, Platform]:
    platform = Platform(home, fork=fork, url=url)
    api = build_api(platform)
    invoke = build_request_path(platform)
    ingress = Ingress(platform)
    console = build_console(platform)
    platform.broker.app = platform.jobs.app = invoke

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(PREFIX):
            await invoke(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == INGRESS and scope["method"] == "POST":
            await ingress(scope, receive, send)
        elif scope["type"] == "http" and (scope["path"] == CONSOLE or scope["path"].startswith(CONSOLE + "/")):
            await console(scope, receive, send)
        else:
            await api(scope, receive, send)

    return app, platform
