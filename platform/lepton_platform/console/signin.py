"""Signing in with the admin token, and out. Only the admin token starts a session: an access
key or a function's scoped token is recognised and refused (403) with what it is for."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from lepton_platform.console.session import COOKIE, LIFETIME
from lepton_platform.keys import PREFIX as KEY_PREFIX

if TYPE_CHECKING:
    from lepton_platform.console.app import Console
    from lepton_platform.service import Platform


def refusal(platform: Platform, token: str) -> tuple[int, str] | None:
    """None for the admin token, else the status and the reason to show."""
    if not token:
        return 401, "Enter the platform's admin token."
    if hmac.compare_digest(token.encode(), platform.token.encode()):
        return None
    if token.startswith(KEY_PREFIX) and platform.keys.find(token) is not None:
        return 403, "That is an access key: it invokes functions and sends events. The console needs the admin token."
    revision = platform.credentials.claimed_revision(token)
    record = platform.catalog.revision(revision) if revision else None
    if record is not None and platform.credentials.issued_to(token, record):
        return 403, f"That is function {record.function}'s scoped token. The console needs the admin token."
    return 403, "That is not the platform's admin token."


def landing(back: str | None) -> str:
    """Where to go after signing in: a console page, never another site."""
    if back and back.startswith("/ui/") and "//" not in back and "\\" not in back:
        return back
    return "/ui/functions"


def routes(console: Console) -> list[Route]:
    async def form(request: Request) -> Response:
        back = landing(request.query_params.get("next"))
        if console.session(request) is not None:
            return RedirectResponse(back, status_code=303)
        return console.render(request, "signin.html", None, back=back)

    async def sign_in(request: Request) -> Response:
        fields = await request.form(max_files=0, max_fields=4)
        token, back = str(fields.get("token") or "").strip(), landing(str(fields.get("next") or ""))
        refused = refusal(console.platform, token)
        if refused is not None:
            return console.render(request, "signin.html", None, status=refused[0], back=back, problem=refused[1])
        cookie, _ = console.sessions.start()
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(
            COOKIE, cookie, max_age=LIFETIME, path="/ui", secure=request.url.scheme == "https", httponly=True, samesite="strict"
        )
        return response

    async def sign_out(request: Request) -> Response:
        await console.actor(request)
        console.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/ui/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/ui", secure=request.url.scheme == "https", httponly=True, samesite="strict")
        return response

    return [
        Route("/ui/signin", form, methods=["GET"]),
        Route("/ui/signin", sign_in, methods=["POST"]),
        Route("/ui/signout", sign_out, methods=["POST"]),
    ]
