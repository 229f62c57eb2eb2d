"""The platform's HTTP API, assembled: the `/v1` routers (`*_api.py`), the platform's own
probes, and the one handler that answers every `LeptonError` with its status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from lepton.errors import LeptonError
from lepton_platform import buckets_api, events_api, functions_api, jobs_api, keys_api, secrets_api
from lepton_platform.auth import require_admin
from lepton_platform.dependencies import Authorization, PlatformDep
from lepton_platform.ingress import document
from lepton_platform.service import Platform

logger = logging.getLogger("lepton.platform.api")

probes = APIRouter(include_in_schema=False)


@probes.get("/healthz")
async def healthz(platform: PlatformDep) -> dict[str, Any]:
    return {"status": "ok", "functions": len(platform.fleets), "backend": platform.backend.name, **platform.backend.health()}


@probes.get("/metrics")
async def metrics(platform: PlatformDep, authorization: Authorization = None) -> Response:
    """Open to any scraper, unless `metrics_public: false` asks for the admin token (a
    Prometheus `authorization` with `credentials_file`)."""
    if not platform.config.metrics_public:
        require_admin(platform.token, authorization)
    body = platform.metrics.render() + await platform.backend.replica_metrics()
    return Response(body, media_type="text/plain; version=0.0.4")


async def answer_error(request: Request, exc: Exception) -> JSONResponse:
    """Any LeptonError a route lets through: its message as `detail`, its status and headers.
    One that is the platform's fault (5xx) is logged, with its cause."""
    assert isinstance(exc, LeptonError)
    if exc.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=exc.headers)


ROUTERS = (
    probes,
    functions_api.router,
    functions_api.downloads,
    buckets_api.router,
    events_api.router,
    jobs_api.router,
    keys_api.router,
    secrets_api.router,
)


def build_api(platform: Platform) -> FastAPI:
    """The API app for `platform`: its routes find it in `app.state.platform`."""
    app = FastAPI(title="Lepton platform", version="1", lifespan=platform.lifespan, docs_url=None, redoc_url=None)
    app.state.platform = platform
    app.add_exception_handler(LeptonError, answer_error)
    for router in ROUTERS:
        app.include_router(router)
    app.openapi_schema = document(app.openapi())  # with the event ingress, which app.py serves beside this app
    return app
