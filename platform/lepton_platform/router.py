"""Outermost layer of the request path: `/fn/{name}` -> the function's fleet, with auth.

`admit` is the whole decision; the ASGI `Router` here and the socket-level fast path in
`connection.py` both ask it, so an invocation is judged the same whichever way it came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lepton_platform.asgi import ASGIApp, Receive, Refusal, Scope, Send, header, send_refusal, too_large

if TYPE_CHECKING:
    from lepton_platform.service import Platform

PREFIX = "/fn/"
BEARER = ((b"www-authenticate", b"Bearer"),)


def admit(platform: Platform, name: str, authorization: str | None, content_length: str | None) -> Any:
    """The function's fleet, or the Refusal that answers the request instead."""
    fleet = platform.fleets.get(name)
    if fleet is None:
        return Refusal(404, f"function {name!r} not found; `lepton ls` lists the deployed ones")
    if not fleet.spec.public:
        denied = platform.callers.refusal(name, authorization)
        if denied is not None:
            status, reason = denied
            return Refusal(status, reason, BEARER)
    refused = too_large(content_length, platform.config.limits.max_invocation_bytes)
    if refused:
        return Refusal(413, f"{refused} for function {name!r}")
    return fleet


class Router:
    def __init__(self, app: ASGIApp, platform: Platform) -> None:
        self.app = app
        self.platform = platform
        self.limit = platform.config.limits.max_invocation_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name, _, rest = scope["path"][len(PREFIX):].partition("/")
        fleet = admit(self.platform, name, header(scope, b"authorization"), header(scope, b"content-length"))
        if isinstance(fleet, Refusal):
            await send_refusal(send, fleet)
            return
        query = scope.get("query_string", b"")
        scope["lepton.fleet"] = fleet
        scope["lepton.limit"] = self.limit
        scope["lepton.path"] = "/" + rest + ("?" + query.decode("latin-1") if query else "")
        await self.app(scope, receive, send)
