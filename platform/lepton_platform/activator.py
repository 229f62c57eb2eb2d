"""Middle layer: hold the request until a replica with a free slot is ready.

When the function is at zero replicas this is where the request waits while one is forked;
the response then says `X-Lepton-Cold-Start: 1`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lepton_platform.asgi import ASGIApp, Message, Receive, Refusal, Scope, Send, send_refusal
from lepton_platform.fleet import Overloaded, StartFailed

if TYPE_CHECKING:
    from lepton_platform.backends.base import Serving
    from lepton_platform.metrics import PlatformMetrics


async def acquire(fleet: Serving, metrics: PlatformMetrics, *, bounded: bool = True) -> tuple[Any, bool] | Refusal:
    """(replica, cold) once one has a free slot, or the Refusal (recorded in the metrics)."""
    started = time.perf_counter()
    cold = False  # a refusal counts as a cold start only when a start was what failed
    try:
        return await fleet.acquire(timeout=fleet.spec.timeout, bounded=bounded)
    except TimeoutError:
        refusal = Refusal(504, f"function {fleet.name!r} had no free replica within {fleet.spec.timeout:g}s")
    except StartFailed as exc:
        refusal, cold = Refusal(503, f"function {fleet.name!r} cannot start: {exc}"), True
    except Overloaded as exc:
        refusal = Refusal(503, str(exc), ((b"retry-after", b"1"),))
    metrics.invoked(fleet.name, refusal.status, time.perf_counter() - started, cold)
    return refusal


class Activator:
    def __init__(self, app: ASGIApp, metrics: PlatformMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fleet = scope["lepton.fleet"]
        started = time.perf_counter()
        acquired = await acquire(fleet, self.metrics, bounded=not scope.get("lepton.internal", False))
        if isinstance(acquired, Refusal):
            await send_refusal(send, acquired, scope)
            return
        replica, cold = acquired
        scope["lepton.replica"] = replica
        scope["lepton.cold"] = cold
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            fleet.release(replica)
            self.metrics.invoked(fleet.name, status, time.perf_counter() - started, cold)
