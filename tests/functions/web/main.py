"""Sample user code: web endpoints, served one at a time by tests/test_web.py."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import StreamingResponse

import lepton


@lepton.function(methods=["GET", "POST", "DELETE"])
def site(request: lepton.Request) -> lepton.Response:
    """Answers by sub-path, to show each kind of return value."""
    if request.path == "/text":
        return "plain words"
    if request.path == "/bytes":
        return b"\x89PNG"
    if request.path == "/nothing":
        return None
    if request.path == "/created":
        return lepton.Response("made", status_code=201, headers={"location": "/things/1"})
    if request.path == "/stream":
        return StreamingResponse(iter([b"one ", b"two"]), media_type="text/plain")
    if request.path == "/teapot":
        raise HTTPException(418, "short and stout")
    if request.path == "/broken":
        raise ValueError("no such thing")
    if request.path == "/echo":
        return request.json()
    return {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "agent": request.headers.get("X-Agent"),
        "form": request.form,
        "files": {name: [f.filename, f.content_type, len(f.data), f.data[:4].decode("latin-1")] for name, f in request.files.items()},
        "text": request.text() if not request.files else "",
    }


@lepton.function(methods=["GET", "POST"])
def add(a: int, b: int = 0, tags: list[str] = []) -> dict:  # noqa: B006 - a parameter default, as users write it
    """Sync, so it runs in a thread: the job id must reach it there too."""
    return {"sum": a + b, "tags": tags, "job": lepton.job_id()}
