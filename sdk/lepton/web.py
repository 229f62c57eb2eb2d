"""What a web endpoint sees of its HTTP call: `Request`, `UploadedFile` and the job id.

    @lepton.function(methods=["GET", "POST"])
    def echo(request: lepton.Request) -> lepton.Response:
        if request.method == "GET":
            return {"path": request.path, "q": request.query.get("q")}
        return lepton.Response(request.files["image"].data, media_type="image/png")

The runtime reads the whole body (and parses a form) before it calls the handler, so a
plain `def` handler needs no `await`. `Response` is Starlette's, as are `query` and `headers`.
"""

from __future__ import annotations

import contextvars
import json as jsonlib
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import Response

__all__ = ["Request", "Response", "UploadedFile", "job_id"]

# Set by the runtime for each call from the `lepton-job-id` header; handler threads copy it.
JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("lepton_job_id", default=None)


def job_id() -> str | None:
    """The id of the async job this call is an attempt of, or None for a direct call.

    Retries of a job send the same id again: use it to make side effects happen once.
    """
    return JOB_ID.get()


@dataclass(frozen=True)
class UploadedFile:
    """One file of a `multipart/form-data` upload, read into memory."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass(frozen=True)
class Request:
    """The HTTP request a `request: lepton.Request` handler receives.

    `path` is what follows the function's own URL: `/` for `/fn/NAME`, `/a/b` for
    `/fn/NAME/a/b`. `form` and `files` are filled for urlencoded and multipart bodies (the
    last value wins for a repeated field).
    """

    method: str
    path: str
    query: QueryParams
    headers: Headers
    body: bytes = b""
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON answers 400."""
        try:
            return jsonlib.loads(self.body)
        except ValueError as exc:
            raise HTTPException(400, f"request body is not valid JSON: {exc}") from None

    def text(self) -> str:
        """The body decoded with the charset of its content type (UTF-8 by default)."""
        _, _, charset = self.headers.get("content-type", "").partition("charset=")
        try:
            return self.body.decode(charset.split(";")[0].strip().strip('"') or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")
