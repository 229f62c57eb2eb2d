"""Builds the console: a Starlette app for every path under `/ui`, its pages rendered from
Jinja2 templates (autoescaped: function names, log lines and object keys are text, never
markup), its script and stylesheet shipped in the package. `Console` holds what the pages
share: the platform, the sessions and the rules for who may see and do what.

Who: a session started with the admin token (`signin.py`). A page asked for without one
redirects to the sign-in page; an action or a data stream answers 401. Every POST must carry
the session's CSRF token (a form field, or `X-CSRF-Token` from the script), else 403.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message

from lepton.errors import LeptonError
from lepton_platform.asgi import ASGIApp, Receive, Scope, Send
from lepton_platform.buckets import StorageError
from lepton_platform.console import buckets, events, functions, jobs, signin
from lepton_platform.console.charts import chart, duration, sparkline
from lepton_platform.console.session import COOKIE, Session, Sessions
from lepton_platform.errors import NotFound

if TYPE_CHECKING:
    from lepton_platform.service import Platform

PREFIX = "/ui"
MAX_FIELDS = 200  # the largest form: a share for each revision shown, and the token; no form takes files
HERE = Path(__file__).parent
HEADERS = [
    # Only the console's own script and stylesheet run; nothing may frame it or take its forms elsewhere.
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


class SignInFirst(Exception):
    """A page asked for without a session: the answer is the sign-in page, then back here."""

    def __init__(self, back: str) -> None:
        self.back = back


class Console:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.sessions = Sessions()
        self.templates = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True
        )
        self.templates.filters.update(ago=ago, when=when, duration=duration, size=size, q=lambda s: quote(str(s), safe=""))
        self.templates.globals.update(sparkline=sparkline, chart=chart, prefix=PREFIX)

    def session(self, request: Request) -> Session | None:
        return self.sessions.find(request.cookies.get(COOKIE))

    def viewer(self, request: Request) -> Session:
        """The session behind a page, or off to the sign-in page."""
        session = self.session(request)
        if session is None:
            raise SignInFirst(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return session

    def reader(self, request: Request) -> Session:
        """The session behind a data stream or download: 401 without one."""
        session = self.session(request)
        if session is None:
            raise HTTPException(401, "sign in to the console first (/ui/signin)")
        return session

    async def actor(self, request: Request) -> tuple[Session, dict[str, Any]]:
        """The session behind a POST and its form, once its CSRF token matches."""
        session = self.reader(request)
        form = await request.form(max_files=0, max_fields=MAX_FIELDS) if _is_form(request) else {}
        csrf = form.get("csrf")
        token = csrf if isinstance(csrf, str) else request.headers.get("x-csrf-token")
        if not session.csrf_matches(token):
            raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page and try again")
        return session, dict(form)

    def render(self, request: Request, template: str, session: Session | None, status: int = 200, **context: Any) -> HTMLResponse:
        flash = list(session.flash) if session else []
        if session:
            session.flash.clear()
        html = self.templates.get_template(template).render(
            request=request, session=session, flash=flash, path=request.url.path, platform_url=self.platform.url, **context
        )
        return HTMLResponse(html, status_code=status)

    @staticmethod
    def done(session: Session, back: str, message: str, kind: str = "ok") -> RedirectResponse:
        """After a POST: the message once, on the page the action came from (303, so a reload does not repeat it)."""
        session.flash.append((kind, message))
        return RedirectResponse(back, status_code=303)

    async def attempt(self, session: Session, back: str, success: str, action: Awaitable[Any]) -> RedirectResponse:
        """Run a platform operation for a form; its refusal (bad input, a revision that is
        not ready) becomes the message on the page rather than an error page."""
        try:
            await action
        except LeptonError as exc:
            return self.done(session, back, str(exc), "error")
        return self.done(session, back, success)


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "")
    return kind.startswith("application/x-www-form-urlencoded") or kind.startswith("multipart/form-data")


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "—"
    seconds = max(0, time.time() - timestamp)
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if timestamp else "—"


def size(count: int | None) -> str:
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def build_console(platform: Platform) -> ASGIApp:
    console = Console(platform)

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{PREFIX}/functions", status_code=303)

    async def sign_in_first(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInFirst)
        return RedirectResponse(f"{PREFIX}/signin?next={quote(exc.back, safe='')}", status_code=303)

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            status, detail = exc.status_code, exc.detail
        else:
            status, detail = getattr(exc, "status", 404), str(exc)  # NotFound, or the store's own StorageError
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"detail": detail}, status_code=status)
        return console.render(request, "error.html", console.session(request), status=status, status_code=status, detail=detail)

    routes = [
        Route(PREFIX, home),
        Route(f"{PREFIX}/", home),
        Mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="static"),
        *signin.routes(console),
        *functions.routes(console),
        *events.routes(console),
        *buckets.routes(console),
        *jobs.routes(console),
    ]
    app = Starlette(
        routes=routes, exception_handlers={SignInFirst: sign_in_first, HTTPException: refused, NotFound: refused, StorageError: refused}
    )

    async def secured(scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    *HEADERS,
                    *([] if scope["path"].startswith(f"{PREFIX}/static/") else [(b"cache-control", b"no-store")]),
                ]
            await send(message)

        await app(scope, receive, with_headers)

    return secured
