"""Outermost layer of the request path: `/fn/{name}` -> the function's fleet, with auth."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lepton_platform import auth
from lepton_platform.asgi import ASGIApp, Receive, Scope, Send, declared_too_large, header, send_json

if TYPE_CHECKING:
    from lepton_platform.service import Platform

PREFIX = "/fn/"


class Router:
    def __init__(self, app: ASGIApp, platform: Platform) -> None:
        self.app = app
        self.platform = platform
        self.limit = platform.config.limits.max_invocation_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, _, rest = scope["path"][len(PREFIX):].partition("/")
        fleet = self.platform.fleets.get(name)
        if fleet is None:
            await send_json(send, 404, f"function {name!r} not found; `lepton ls` lists the deployed ones")
            return
        if not fleet.spec.public:
            status = auth.check(self.platform.token, header(scope, b"authorization"))
            if status:
                reason = "missing bearer token" if status == 401 else "invalid token"
                await send_json(send, status, f"{reason} for function {name!r}", [(b"www-authenticate", b"Bearer")])
                return
        too_large = declared_too_large(scope, self.limit)
        if too_large:
            await send_json(send, 413, f"{too_large} for function {name!r}")
            return
        scope["lepton.fleet"] = fleet
        scope["lepton.limit"] = self.limit
        scope["lepton.path"] = "/" + rest
        await self.app(scope, receive, send)
