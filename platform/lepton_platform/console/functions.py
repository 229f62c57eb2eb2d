"""The functions pages: every function with its last hour, one function's revisions (rollback,
traffic), replicas, charts and live log tail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from lepton_platform.errors import NotFound
from lepton_platform.logfiles import LogQuery

if TYPE_CHECKING:
    from lepton_platform.console.app import Console

REVISIONS_SHOWN = 50
TAIL = 200
LONGEST_LINE = 64 * 1024  # a log line without its newline yet is shown once it is this long


async def log_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Log bytes as Server-Sent Events, one `data:` per line. A follow read can end mid-line:
    the rest waits for the next read. Carriage returns would end an SSE field early, so they go."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) >= LONGEST_LINE:
            lines.append(pending)
            pending = b""
        if lines:
            yield "".join(f"data: {line.decode(errors='replace').replace(chr(13), '')}\n\n" for line in lines)


def routes(console: Console) -> list[Route]:
    platform = console.platform

    async def listing(request: Request) -> Response:
        session = console.viewer(request)
        base = str(request.base_url).rstrip("/")
        found = await asyncio.gather(*(platform.describe(name, base) for name in sorted(platform.fleets)), return_exceptions=True)
        rows = []
        for info in found:
            if isinstance(info, NotFound):  # removed while the page was being made
                continue
            if isinstance(info, BaseException):
                raise info
            rows.append({"info": info, "history": platform.metrics.history.summary(info["name"])})
        return console.render(request, "functions.html", session, rows=rows)

    async def detail(request: Request) -> Response:
        session = console.viewer(request)
        name = request.path_params["name"]
        info = await platform.describe(name, str(request.base_url).rstrip("/"))
        traffic = platform.traffic_of(name)
        tags: dict[str, list[str]] = {}
        for tag, revision in sorted(traffic.tags.items()):
            tags.setdefault(revision, []).append(tag)
        newest_first = platform.catalog.revisions(name)[::-1]  # the newest, and any older one that still has a share or a tag
        revisions = [r for i, r in enumerate(newest_first) if i < REVISIONS_SHOWN or r.id in traffic.split or r.id in tags]
        statuses = await asyncio.gather(*(platform.backend.status(fleet) for fleet in platform.serving(name)))
        replicas = [replica for status in statuses for replica in status.get("replica_details", [])]  # of every revision with a share
        return console.render(
            request,
            "function.html",
            session,
            info=info,
            revisions=revisions,
            split=traffic.split,
            tags=tags,
            history=platform.metrics.history.summary(name),
            replicas=replicas,
        )

    async def rollback(request: Request) -> Response:
        session, form = await console.actor(request)
        name = request.path_params["name"]
        platform.fleet(name)
        revision = str(form.get("revision", ""))
        return await console.attempt(
            session, f"/ui/functions/{name}", f"{revision} takes all of {name}'s traffic now.", platform.rollback(name, revision)
        )

    async def traffic(request: Request) -> Response:
        session, form = await console.actor(request)
        name = request.path_params["name"]
        platform.fleet(name)
        back = f"/ui/functions/{name}"
        split: dict[str, int] = {}
        for field, value in form.items():
            if field.startswith("share."):
                text = str(value).strip() or "0"
                if not (text.isascii() and text.isdigit() and len(text) <= 3):
                    return console.done(session, back, f"the share of {field[6:]} must be a whole percent, not {text!r}", "error")
                split[field[6:]] = int(text)
        shown = ", ".join(f"{revision} {percent}%" for revision, percent in sorted(split.items()) if percent)
        return await console.attempt(session, back, f"{name}'s traffic is now {shown}.", platform.set_traffic(name, split, None))

    async def logs(request: Request) -> Response:
        console.reader(request)
        chunks = await platform.logs_of(request.path_params["name"], LogQuery(TAIL, follow=True))
        return StreamingResponse(log_events(chunks), media_type="text/event-stream", headers={"x-accel-buffering": "no"})

    return [
        Route("/ui/functions", listing, methods=["GET"]),
        Route("/ui/functions/{name}", detail, methods=["GET"]),
        Route("/ui/functions/{name}/rollback", rollback, methods=["POST"]),
        Route("/ui/functions/{name}/traffic", traffic, methods=["POST"]),
        Route("/ui/functions/{name}/logs", logs, methods=["GET"]),
    ]
