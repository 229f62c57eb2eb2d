"""The `/v1` control API (admin token required) and the platform's own probes."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lepton.errors import ArtifactError
from lepton_platform import auth
from lepton_platform.buckets_api import build_bucket_router
from lepton_platform.events_api import build_events_router
from lepton_platform.jobs_api import build_jobs_router
from lepton_platform.keys_api import build_keys_router
from lepton_platform.logfiles import LogQuery, parse_since
from lepton_platform.paging import DEFAULT_LIMIT, Limit, keys_after, page
from lepton_platform.secrets_api import build_secrets_router
from lepton_platform.service import DeployFailed, InvalidTraffic, NotFound, Platform
from lepton_platform.storage import StorageError

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_ARTIFACT = 1 << 30


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored (`dry_run` must never deploy)

    artifact: str = Field(pattern=DIGEST.pattern, description="sha256:<hex> of an uploaded artifact")
    function: str
    wait: bool = True
    image: str = Field("", max_length=512, pattern=r"^[^\s]*$",
                       description="knative: the container image to run it in (from `lepton build`); default: the platform's runtime image")
    dry_run: bool = Field(False, description="only check that it can be deployed (a deploy of many functions checks them all first)")
    deploying: list[str] = Field([], max_length=100_000, description="every function the same deploy creates or updates, "
                                 "so that one dry run checks the platform's limits for all of them")
    traffic: int | None = Field(None, ge=0, le=100, description="the new revision's share of traffic (a canary); default 100")
    tag: str | None = Field(None, max_length=64, description="a tag for the new revision: /fn/NAME@TAG reaches it")


class TrafficRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: dict[str, int] | None = Field(None, description="revision id -> percent, adding up to 100; omitted: as it is")
    tags: dict[str, str | None] = Field({}, description="tag -> revision id, or null to remove the tag")


class RollbackRequest(BaseModel):
    revision: str | None = None


def build_api(platform: Platform) -> FastAPI:
    app = FastAPI(title="Lepton platform", version="1", lifespan=platform.lifespan, docs_url=None, redoc_url=None)
    app.state.platform = platform

    def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        status = auth.check(platform.token, authorization)
        if status:
            raise HTTPException(status, "missing bearer token" if status == 401 else "invalid token",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ArtifactError)
    async def bad_artifact(_: Request, exc: ArtifactError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StorageError)
    async def storage_error(_: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DeployFailed)
    @app.exception_handler(InvalidTraffic)
    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "functions": len(platform.fleets), "backend": platform.backend.name, **platform.backend.health()}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(authorization: Annotated[str | None, Header()] = None) -> Response:
        """Open to any scraper, unless `metrics_public: false` asks for the admin token (a
        Prometheus `authorization` with `credentials_file`)."""
        if not platform.config.metrics_public:
            admin(authorization)
        body = platform.metrics.render() + await platform.backend.replica_metrics()
        return Response(body, media_type="text/plain; version=0.0.4")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(admin)])

    @v1.put("/artifacts/{digest}", status_code=201, summary="Upload an artifact under its sha256 digest")
    async def upload(digest: str, request: Request) -> dict[str, Any]:
        if not DIGEST.match(digest):
            raise HTTPException(400, f"{digest!r} is not a digest; use sha256:<64 hex digits>")
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_ARTIFACT:
            raise HTTPException(413, f"artifact of {length} bytes is over the {MAX_ARTIFACT} byte limit")
        data = await request.body()
        manifest = await asyncio.to_thread(platform.save_artifact, digest, data)
        return {"digest": digest, "functions": [fn["name"] for fn in manifest["functions"]]}

    @v1.post("/functions", summary="Deploy one function of an uploaded artifact")
    async def deploy(body: DeployRequest, request: Request) -> JSONResponse:
        spec, unchanged = platform.prepare(body.function, body.artifact, body.image, together=body.deploying,
                                           percent=body.traffic, tag=body.tag)
        base = str(request.base_url).rstrip("/")
        if body.dry_run:
            return JSONResponse({"function": spec.name, "revision": None, "changed": unchanged is None, "status": "valid", "url": f"{base}/fn/{spec.name}"})
        if unchanged is not None:
            return JSONResponse({"function": spec.name, "revision": unchanged.id, "changed": False, "status": "ready", "url": f"{base}/fn/{spec.name}"})
        if not body.wait:
            task = asyncio.create_task(platform.deploy(spec, body.artifact, body.image, percent=body.traffic, tag=body.tag))
            task.add_done_callback(lambda t: t.exception())  # failures are recorded on the revision
            return JSONResponse({"function": spec.name, "revision": None, "changed": True, "status": "deploying", "url": f"{base}/fn/{spec.name}"}, status_code=202)
        revision = await platform.deploy(spec, body.artifact, body.image, percent=body.traffic, tag=body.tag)
        answer = {"function": spec.name, "revision": revision.id, "changed": True, "status": "ready", "url": f"{base}/fn/{spec.name}",
                  "traffic": platform.traffic_of(spec.name).to_json()}
        problem = getattr(platform.fleets.get(spec.name), "problem", None)
        if problem:
            answer["warning"] = problem
        return JSONResponse(answer)

    @v1.get("/functions", summary="List functions by name, a page at a time (Link: rel=next)")
    async def list_functions(request: Request, response: Response, limit: Limit = DEFAULT_LIMIT,
                             after: Annotated[str | None, Query(max_length=256, description="the last name of the page before")] = None,
                             ) -> list[dict[str, Any]]:
        chosen = page(keys_after(sorted(platform.fleets), after, limit + 1), limit, request, response, lambda name: name)
        base = str(request.base_url).rstrip("/")
        return list(await asyncio.gather(*(platform.describe(name, base) for name in chosen)))

    @v1.get("/functions/{name}", summary="Describe one function")
    async def get_function(name: str, request: Request) -> dict[str, Any]:
        return await platform.describe(name, str(request.base_url).rstrip("/"))

    @v1.delete("/functions/{name}", summary="Stop a function's replicas and remove it")
    async def remove(name: str) -> dict[str, Any]:
        await platform.remove(name)
        return {"function": name, "removed": True}

    @v1.get("/functions/{name}/revisions", summary="Revision history, oldest first, a page at a time (Link: rel=next)")
    async def revisions(name: str, request: Request, response: Response, limit: Limit = DEFAULT_LIMIT,
                        after: Annotated[int | None, Query(ge=0, le=2**31, description="the last number of the page before")] = None,
                        ) -> list[dict[str, Any]]:
        traffic = platform.traffic_of(name)
        found = page(platform.store.revisions(name, limit=limit + 1, after=after or 0), limit, request, response, lambda r: r.number)
        return [{**r.to_json(), "routed": r.id == traffic.main, "percent": traffic.split.get(r.id, 0), "tags": traffic.tags_of(r.id)}
                for r in found]

    @v1.get("/functions/{name}/traffic", summary="How the function's traffic is shared, and its tags")
    async def get_traffic(name: str) -> dict[str, Any]:
        return {"function": name, **platform.traffic_of(name).to_json()}

    @v1.put("/functions/{name}/traffic", summary="Share traffic between ready revisions (percents adding up to 100) and set tags")
    async def set_traffic(name: str, body: TrafficRequest) -> dict[str, Any]:
        traffic = await platform.set_traffic(name, body.split, body.tags)
        return {"function": name, **traffic.to_json()}

    @v1.post("/functions/{name}/rollback", summary="Route 100% of traffic to an earlier revision (tags stay)")
    async def rollback(name: str, body: RollbackRequest) -> dict[str, Any]:
        revision = await platform.rollback(name, body.revision)
        return {"function": name, "revision": revision.id}

    @v1.get("/functions/{name}/logs", summary="Logs of the function's replicas, merged by time; 404 for a replica that matches none")
    async def logs(name: str, tail: Annotated[int, Query(ge=0, le=100_000, description="the last lines overall")] = 200,
                   follow: bool = False,
                   replica: Annotated[str | None, Query(max_length=253, pattern=r"^[A-Za-z0-9._-]+$",
                                                        description="only replicas (pods) whose id starts so: one, or a revision's")] = None,
                   since: Annotated[str | None, Query(max_length=64, description="only lines this recent: 30s, 10m, 2h, 1d, "
                                                      "1h30m, or an RFC 3339 time")] = None) -> StreamingResponse:
        try:
            start = parse_since(since, time.time()) if since else None
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        lines = await platform.logs_of(name, LogQuery(tail, follow, replica, start))
        return StreamingResponse(lines, media_type="text/plain; charset=utf-8")

    app.include_router(v1)

    @app.get("/v1/artifacts/{digest}", summary="Download an artifact (admin token, or a token of a revision of its function)")
    async def download(digest: str, authorization: Annotated[str | None, Header()] = None) -> FileResponse:
        """How a Knative pod gets its code: with the scoped token from its function's Secret."""
        caller = auth.identify(platform, authorization)
        if not DIGEST.match(digest):
            raise HTTPException(400, f"{digest!r} is not a digest; use sha256:<64 hex digits>")
        if caller.revision is not None and not platform.may_read_artifact(caller.revision, digest):
            raise HTTPException(403, f"{caller.who} may not read artifact {digest[:19]}...: it belongs to another function")
        path = platform.artifact_path(digest)
        if not path.exists():
            raise HTTPException(404, f"artifact {digest} is not on the platform")
        return FileResponse(path, media_type="application/gzip")
    app.include_router(build_bucket_router(platform))
    app.include_router(build_events_router(platform))
    app.include_router(build_jobs_router(platform))
    app.include_router(build_keys_router(platform))
    app.include_router(build_secrets_router(platform))
    return app

