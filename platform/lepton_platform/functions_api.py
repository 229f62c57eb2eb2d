"""`/v1/artifacts` and `/v1/functions`: upload code, deploy it, describe, route, roll back,
read logs and remove functions (admin token only); and download an artifact, which a
revision's scoped token may do too: that is how a Knative pod gets its code."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from lepton_platform import auth
from lepton_platform.dependencies import Authorization, PlatformDep, admin_token
from lepton_platform.errors import Denied, NotFound
from lepton_platform.logfiles import LogQuery, parse_since
from lepton_platform.paging import DEFAULT_LIMIT, Limit, keys_after, page

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
MAX_ARTIFACT = 1 << 30

router = APIRouter(prefix="/v1", dependencies=[Depends(admin_token)])
downloads = APIRouter(prefix="/v1")  # the admin token or a scoped token: the route checks which


class DeployRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored (`dry_run` must never deploy)

    artifact: str = Field(pattern=DIGEST.pattern, description="sha256:<hex> of an uploaded artifact")
    function: str
    wait: bool = True
    image: str = Field(
        "",
        max_length=512,
        pattern=r"^[^\s]*$",
        description="knative: the container image to run it in (from `lepton build`); default: the platform's runtime image",
    )
    dry_run: bool = Field(False, description="only check that it can be deployed (a deploy of many functions checks them all first)")
    deploying: list[str] = Field(
        [],
        max_length=100_000,
        description="every function the same deploy creates or updates, so that one dry run checks the platform's limits for all of them",
    )
    traffic: int | None = Field(None, ge=0, le=100, description="the new revision's share of traffic (a canary); default 100")
    tag: str | None = Field(None, max_length=64, description="a tag for the new revision: /fn/NAME@TAG reaches it")


class TrafficRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: dict[str, int] | None = Field(None, description="revision id -> percent, adding up to 100; omitted: as it is")
    tags: dict[str, str | None] = Field({}, description="tag -> revision id, or null to remove the tag")


class RollbackRequest(BaseModel):
    revision: str | None = None


def valid_digest(digest: str) -> str:
    if not DIGEST.match(digest):
        raise HTTPException(400, f"{digest!r} is not a digest; use sha256:<64 hex digits>")
    return digest


@router.put("/artifacts/{digest}", status_code=201, summary="Upload an artifact under its sha256 digest")
async def upload(digest: str, request: Request, platform: PlatformDep) -> dict[str, Any]:
    valid_digest(digest)
    length = int(request.headers.get("content-length") or 0)
    if length > MAX_ARTIFACT:
        raise HTTPException(413, f"artifact of {length} bytes is over the {MAX_ARTIFACT} byte limit")
    data = await request.body()
    manifest = await asyncio.to_thread(platform.save_artifact, digest, data)
    return {"digest": digest, "functions": [fn["name"] for fn in manifest["functions"]]}


@router.post("/functions", summary="Deploy one function of an uploaded artifact")
async def deploy(body: DeployRequest, request: Request, platform: PlatformDep) -> JSONResponse:
    spec, unchanged = platform.prepare(
        body.function, body.artifact, body.image, together=body.deploying, percent=body.traffic, tag=body.tag
    )
    base = str(request.base_url).rstrip("/")
    if body.dry_run:
        return JSONResponse(
            {"function": spec.name, "revision": None, "changed": unchanged is None, "status": "valid", "url": f"{base}/fn/{spec.name}"}
        )
    if unchanged is not None:
        return JSONResponse(
            {"function": spec.name, "revision": unchanged.id, "changed": False, "status": "ready", "url": f"{base}/fn/{spec.name}"}
        )
    if not body.wait:
        task = asyncio.create_task(platform.deploy(spec, body.artifact, body.image, percent=body.traffic, tag=body.tag))
        task.add_done_callback(lambda t: t.exception())  # failures are recorded on the revision
        return JSONResponse(
            {"function": spec.name, "revision": None, "changed": True, "status": "deploying", "url": f"{base}/fn/{spec.name}"},
            status_code=202,
        )
    revision = await platform.deploy(spec, body.artifact, body.image, percent=body.traffic, tag=body.tag)
    answer = {
        "function": spec.name,
        "revision": revision.id,
        "changed": True,
        "status": "ready",
        "url": f"{base}/fn/{spec.name}",
        "traffic": platform.traffic_of(spec.name).to_json(),
    }
    problem = getattr(platform.fleets.get(spec.name), "problem", None)
    if problem:
        answer["warning"] = problem
    return JSONResponse(answer)


@router.get("/functions", summary="List functions by name, a page at a time (Link: rel=next)")
async def list_functions(
    request: Request,
    response: Response,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=256, description="the last name of the page before")] = None,
) -> list[dict[str, Any]]:
    chosen = page(keys_after(sorted(platform.fleets), after, limit + 1), limit, request, response, lambda name: name)
    base = str(request.base_url).rstrip("/")
    return list(await asyncio.gather(*(platform.describe(name, base) for name in chosen)))


@router.get("/functions/{name}", summary="Describe one function")
async def get_function(name: str, request: Request, platform: PlatformDep) -> dict[str, Any]:
    return await platform.describe(name, str(request.base_url).rstrip("/"))


@router.delete("/functions/{name}", summary="Stop a function's replicas and remove it")
async def remove(name: str, platform: PlatformDep) -> dict[str, Any]:
    await platform.remove(name)
    return {"function": name, "removed": True}


@router.get("/functions/{name}/revisions", summary="Revision history, oldest first, a page at a time (Link: rel=next)")
async def revisions(
    name: str,
    request: Request,
    response: Response,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    after: Annotated[int | None, Query(ge=0, le=2**31, description="the last number of the page before")] = None,
) -> list[dict[str, Any]]:
    traffic = platform.traffic_of(name)
    found = page(platform.catalog.revisions(name, limit=limit + 1, after=after or 0), limit, request, response, lambda r: r.number)
    return [
        {**r.to_json(), "routed": r.id == traffic.main, "percent": traffic.split.get(r.id, 0), "tags": traffic.tags_of(r.id)} for r in found
    ]


@router.get("/functions/{name}/traffic", summary="How the function's traffic is shared, and its tags")
async def get_traffic(name: str, platform: PlatformDep) -> dict[str, Any]:
    return {"function": name, **platform.traffic_of(name).to_json()}


@router.put("/functions/{name}/traffic", summary="Share traffic between ready revisions (percents adding up to 100) and set tags")
async def set_traffic(name: str, body: TrafficRequest, platform: PlatformDep) -> dict[str, Any]:
    traffic = await platform.set_traffic(name, body.split, body.tags)
    return {"function": name, **traffic.to_json()}


@router.post("/functions/{name}/rollback", summary="Route 100% of traffic to an earlier revision (tags stay)")
async def rollback(name: str, body: RollbackRequest, platform: PlatformDep) -> dict[str, Any]:
    revision = await platform.rollback(name, body.revision)
    return {"function": name, "revision": revision.id}


@router.get("/functions/{name}/logs", summary="Logs of the function's replicas, merged by time; 404 for a replica that matches none")
async def logs(
    name: str,
    platform: PlatformDep,
    tail: Annotated[int, Query(ge=0, le=100_000, description="the last lines overall")] = 200,
    follow: bool = False,
    replica: Annotated[
        str | None,
        Query(max_length=253, pattern=r"^[A-Za-z0-9._-]+$", description="only replicas (pods) whose id starts so: one, or a revision's"),
    ] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="only lines this recent: 30s, 10m, 2h, 1d, 1h30m, or an RFC 3339 time")
    ] = None,
) -> StreamingResponse:
    try:
        start = parse_since(since, time.time()) if since else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    lines = await platform.logs_of(name, LogQuery(tail, follow, replica, start))
    return StreamingResponse(lines, media_type="text/plain; charset=utf-8")


@downloads.get("/artifacts/{digest}", summary="Download an artifact (admin token, or a token of a revision of its function)")
async def download(digest: str, platform: PlatformDep, authorization: Authorization = None) -> FileResponse:
    """How a Knative pod gets its code: with the scoped token from its function's Secret."""
    caller = auth.identify(platform, authorization)
    valid_digest(digest)
    if caller.revision is not None and not platform.may_read_artifact(caller.revision, digest):
        raise Denied(f"{caller.who} may not read artifact {digest[:19]}...: it belongs to another function")
    path = platform.artifact_path(digest)
    if not path.exists():
        raise NotFound(f"artifact {digest} is not on the platform")
    return FileResponse(path, media_type="application/gzip")
