"""`/v1/jobs`: async jobs started with `Prefer: respond-async` on `/fn/NAME`.

Whoever may invoke a function may read and cancel its jobs: the admin token, an access key
that names the function (or none), a revision's scoped token with it in `calls=[...]`, and,
for a public function, anyone who holds the job's id (128 random bits).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from lepton_platform.auth import BEARER, identify
from lepton_platform.dependencies import Authorization, PlatformDep
from lepton_platform.errors import Conflict, Denied, NotFound
from lepton_platform.jobs.store import FINAL, STATES, SUCCEEDED, Job
from lepton_platform.service import Platform

MAX_WAIT = 60.0

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


async def job_for(platform: Platform, job_id: str, authorization: str | None) -> Job:
    job = await asyncio.to_thread(platform.jobs.store.get, job_id)  # off the event loop: a commit may hold the database
    if job is None:
        raise NotFound(f"job {job_id!r} not found; finished jobs are kept for job_ttl, then removed")
    fleet = platform.fleets.get(job.function)
    if fleet is None or not fleet.spec.public:
        denied = platform.callers.refusal(job.function, authorization)
        if denied is not None:
            raise Denied(denied[1], denied[0], BEARER)
    return job


async def shown(platform: Platform, job: Job) -> dict[str, Any]:
    return job.to_json(await asyncio.to_thread(platform.jobs.store.result, job.id) if job.state == SUCCEEDED else None)


@router.get("", summary="Jobs, newest first, a page at a time")
async def list_jobs(
    platform: PlatformDep,
    authorization: Authorization = None,
    function: str | None = None,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$", description="the `next` of the page before")] = None,
) -> dict[str, Any]:
    caller = identify(platform, authorization, keys=True)
    if state is not None and state not in STATES:
        raise HTTPException(400, f"state {state!r} is not one of {', '.join(STATES)}")
    visible: frozenset[str] | None = caller.functions
    if caller.revision is not None:  # a function's scoped token: the functions in its calls=[...]
        record = platform.catalog.revision(caller.revision)
        visible = frozenset(record.spec.calls) if record else frozenset()
    if visible is not None and function is not None:
        visible = visible & {function}
    jobs = await asyncio.to_thread(
        platform.jobs.store.page, function=function, state=state, functions=visible, limit=limit + 1, after=int(after) if after else None
    )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return {"jobs": [j.to_json() for j in jobs], "next": str(jobs[-1].seq) if more else None}


@router.get("/{job_id}", summary="A job's state, attempts and result; ?wait=S waits up to S seconds for it to end")
async def get_job(
    job_id: str, platform: PlatformDep, authorization: Authorization = None, wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0
) -> dict[str, Any]:
    job = await job_for(platform, job_id, authorization)
    if wait and not job.final:
        job = await platform.jobs.wait(job_id, wait) or job
    return await shown(platform, job)


@router.get("/{job_id}/result", summary="A succeeded job's result as the function returned it")
async def get_result(job_id: str, platform: PlatformDep, authorization: Authorization = None) -> Response:
    job = await job_for(platform, job_id, authorization)
    if job.state != SUCCEEDED:
        why = f": {job.error}" if job.error and job.state in FINAL else ""
        raise Conflict(f"job {job_id} is {job.state}{why}; only a succeeded job has a result")
    result = await asyncio.to_thread(platform.jobs.store.result, job_id)
    return Response(result or b"", media_type=job.content_type or "application/octet-stream")


@router.delete("/{job_id}", summary="Cancel a queued or running job")
async def cancel_job(job_id: str, platform: PlatformDep, authorization: Authorization = None) -> dict[str, Any]:
    runner = platform.jobs
    job = await job_for(platform, job_id, authorization)
    if job.final or not await runner.cancel(job):
        ended = await asyncio.to_thread(runner.store.get, job_id)
        raise Conflict(f"job {job_id} is already {(ended or job).state}")
    cancelled = await asyncio.to_thread(runner.store.get, job_id)
    return await shown(platform, cancelled or job)
