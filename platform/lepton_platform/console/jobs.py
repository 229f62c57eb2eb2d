"""The jobs page: async jobs newest first, by function and state, with their results.

A result is whatever the function returned, so it is never shown as a page of the console:
it comes with `Content-Security-Policy: sandbox`, and as a download unless it is JSON or
plain text."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lepton_platform.jobs.store import STATES, SUCCEEDED

if TYPE_CHECKING:
    from lepton_platform.console.app import Console

JOBS_SHOWN = 100
SHOWN_INLINE = ("application/json", "text/plain")


def routes(console: Console) -> list[Route]:
    store = console.platform.jobs.store

    async def listing(request: Request) -> Response:
        session = console.viewer(request)
        function = request.query_params.get("function") or None
        state = request.query_params.get("state") or None
        if state is not None and state not in STATES:
            raise HTTPException(400, f"state {state!r} is not one of {', '.join(STATES)}")
        after = request.query_params.get("after", "")
        found = await asyncio.to_thread(
            store.page,
            function=function,
            state=state,
            functions=None,
            limit=JOBS_SHOWN + 1,
            after=int(after) if after.isdigit() and len(after) <= 18 else None,
        )
        more = found[JOBS_SHOWN - 1].seq if len(found) > JOBS_SHOWN else None
        return console.render(
            request,
            "jobs.html",
            session,
            jobs=found[:JOBS_SHOWN],
            function=function or "",
            state=state or "",
            states=STATES,
            more=more,
            functions=sorted(console.platform.fleets),
        )

    async def result(request: Request) -> Response:
        console.reader(request)
        job_id = request.path_params["job"]
        job = await asyncio.to_thread(store.get, job_id)
        if job is None:
            raise HTTPException(404, f"job {job_id!r} not found; finished jobs are kept for job_ttl, then removed")
        if job.state != SUCCEEDED:
            raise HTTPException(409, f"job {job_id} is {job.state}; only a succeeded job has a result")
        body = await asyncio.to_thread(store.result, job_id) or b""
        kind = job.content_type or "application/octet-stream"
        headers = {"content-security-policy": "sandbox"}
        if not kind.startswith(SHOWN_INLINE):
            headers["content-disposition"] = f'attachment; filename="{job.id}.result"'
        return Response(body, media_type=kind, headers=headers)

    return [
        Route("/ui/jobs", listing, methods=["GET"]),
        Route("/ui/jobs/{job}/result", result, methods=["GET"]),
    ]
