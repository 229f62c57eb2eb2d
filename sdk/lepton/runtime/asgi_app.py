"""Serving a whole ASGI app (`@lepton.asgi`): build it in the replica, run its lifespan, and
pass every HTTP and WebSocket request through, except the runtime's own under `/_lepton/`."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from lepton import web
from lepton.runtime import tracing
from lepton.runtime.app import INTERNAL, JOB_ID_HEADER, TRACEPARENT_HEADER, TRACESTATE_HEADER, FunctionRuntime, InvocationFailed

if TYPE_CHECKING:
    from lepton.runtime.otlp import Span

logger = logging.getLogger("lepton.runtime")
PREFIX_HEADER = b"x-forwarded-prefix"
_DONE = {"type": "lifespan.done"}  # the app returned or raised: no more lifespan messages


class LifespanFailed(Exception):
    """The app answered `lifespan.startup.failed`: the replica fails as for a failed setup()."""


class Lifespan:
    """Run an app's ASGI lifespan as uvicorn's `lifespan="auto"` does: an app that raises or
    returns before it answers startup does not support lifespan, which is fine."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.state: dict[str, Any] = {}  # what the lifespan leaves for requests (`request.state`)
        self.running = False
        self.answered = False  # the app replied to startup: it does take lifespan events
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._to_app.put({"type": "lifespan.startup"})
        reply = await self._from_app.get()
        if reply["type"] == "lifespan.startup.failed":
            raise LifespanFailed(reply.get("message") or "the app's lifespan startup failed")
        self.running = reply["type"] == "lifespan.startup.complete"

    async def shutdown(self) -> None:
        if not self.running:
            return
        self.running = False
        await self._to_app.put({"type": "lifespan.shutdown"})
        reply = await self._from_app.get()
        if reply["type"] == "lifespan.shutdown.failed":
            logger.error("[%s] the app's lifespan shutdown failed: %s", os.getpid(), reply.get("message", ""))

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._to_app.get, self._send)
        except Exception as exc:
            if self.running:
                logger.exception("[%s] the app's lifespan failed", os.getpid())
            elif not self.answered:
                logger.info("[%s] the app does not take ASGI lifespan events (%s: %s)", os.getpid(), type(exc).__name__, exc)
        finally:
            self._from_app.put_nowait(_DONE)

    async def _send(self, message: dict[str, Any]) -> None:
        self.answered = True
        await self._from_app.put(message)


class AsgiRuntime(FunctionRuntime):
    """The runtime of an `@lepton.asgi` function: `handler` is the user's app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app_lifespan: Lifespan | None = None

    async def prepare(self) -> Callable[..., Any]:
        """Build the app in a thread (a factory may load a model), then run its startup."""
        app: Callable[..., Any] = await self._in_thread(self.fn)
        self.app_lifespan = Lifespan(app)
        await self.app_lifespan.startup()
        return app

    async def shutdown(self) -> None:
        if self.app_lifespan is not None:
            await self.app_lifespan.shutdown()

    def owns(self, scope: Scope) -> bool:
        return scope["type"] in ("http", "websocket") and not scope["path"].startswith(INTERNAL)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.ready.is_set():
            try:
                async with asyncio.timeout(self.spec.timeout):
                    await self._wait_ready()
            except (InvocationFailed, TimeoutError) as exc:
                await self._refuse(scope, receive, send, exc)
                return
        span = self.enter_trace(self._rewrite(scope))
        if scope["type"] == "websocket":
            try:
                await self.handler(scope, receive, send)
            finally:
                self.leave_trace(span, 101)
            return
        await self._observed(scope, receive, send, span)

    def _rewrite(self, scope: Scope) -> tracing.TraceParent | None:
        """Give the app its lifespan state and, behind the platform, the URL prefix the way
        ASGI expects it (`root_path`, and `path` including it), so links and /docs work; an
        async job's id goes to `lepton.job_id()`. Returns the caller's trace context."""
        scope["state"] = self.app_lifespan.state.copy() if self.app_lifespan is not None else {}
        traceparent = tracestate = None
        for key, value in scope["headers"]:
            if key == PREFIX_HEADER and value.startswith(b"/"):
                prefix = value.decode("latin-1").rstrip("/")
                scope["root_path"] = prefix
                scope["path"] = prefix + scope["path"]
                if scope.get("raw_path") is not None:
                    scope["raw_path"] = prefix.encode("latin-1") + scope["raw_path"]
            elif key == JOB_ID_HEADER:
                web.JOB_ID.set(value.decode("latin-1"))
            elif key == TRACEPARENT_HEADER:
                traceparent = value.decode("latin-1")
            elif key == TRACESTATE_HEADER:
                tracestate = value.decode("latin-1")
        return tracing.parse(traceparent, tracestate)

    async def _observed(self, scope: Scope, receive: Receive, send: Send, span: Span | None) -> None:
        """Pass an HTTP request to the app, counting it in the function's metrics (and its span)."""
        status = 500  # unless the app starts a response

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        self.metrics.started()
        try:
            await self.handler(scope, receive, observe)
        finally:
            self.metrics.finished(status, time.perf_counter() - started)
            self.leave_trace(span, status)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1011, "reason": "the function is not ready"})
            return
        if isinstance(exc, InvocationFailed):
            status, detail = exc.status, exc.detail
        else:
            status, detail = 504, f"function {self.fn.name!r} was not ready within {self.spec.timeout:g}s"
        await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)
