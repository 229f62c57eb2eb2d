"""One error tree for the SDK, the CLI and the platform client.

Every error a user can cause subclasses `LeptonError`; the CLI prints its message as one line
and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping


class LeptonError(Exception):
    """Base of every error Lepton raises on purpose.

    `exit_code` is what the CLI exits with when it shows one. `status` is the HTTP status the
    platform's API answers with when one reaches it, as `{"detail": message}` with `headers`
    (a `WWW-Authenticate` challenge, say) where the answer needs them; a subclass sets its own.
    """

    exit_code = 1
    status: int = 500
    headers: Mapping[str, str] | None = None


class SpecError(LeptonError, ValueError):
    """A decorator option or trigger is invalid; raised at decoration time."""

    exit_code = 2
    status = 422


class LoadError(LeptonError):
    """User code could not be imported, or the named function is not in it."""

    exit_code = 2


class ArtifactError(LeptonError):
    """An artifact is malformed or does not match its digest."""

    status = 400


class BucketError(LeptonError, ValueError):
    """A bucket name or object key is invalid: the SDK raises it before anything is sent,
    the platform's API answers it with a 400."""

    exit_code = 2
    status = 400


class InvocationError(LeptonError):
    """A function call over HTTP returned an error status."""

    def __init__(self, status_code: int, detail: object, url: str = "") -> None:
        self.status_code: int | None = status_code  # None only for a JobFailed that got no answer
        self.detail = detail
        self.url = url
        where = f" from {url}" if url else ""
        super().__init__(f"HTTP {status_code}{where}: {_detail_text(detail)}")


class JobFailed(InvocationError):
    """An async job ended in failure: `status_code` is its last attempt's HTTP status (None when
    no answer came, e.g. a timeout) and `detail` the platform's account of it."""

    def __init__(self, job_id: str, function: str, status_code: int | None, error: str | None, attempts: int) -> None:
        super().__init__(status_code or 0, error, f"/v1/jobs/{job_id}")
        self.status_code = status_code
        self.job_id = job_id
        self.attempts = attempts
        # The platform's error already starts with the status code ("422: ...").
        self.args = (f"job {job_id} ({function}) failed after {attempts} attempt(s): {error or 'no error recorded'}",)


class JobCancelled(LeptonError):
    """An async job was cancelled before it finished; it has no result."""

    def __init__(self, job_id: str, function: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} ({function}) was cancelled")


class JobTimeout(LeptonError, TimeoutError):
    """`Job.result(timeout=...)` ran out of time; the job itself goes on."""


class ConnectError(LeptonError):
    """The platform or function server could not be reached."""


def _detail_text(detail: object) -> str:
    """Render FastAPI-style `detail` (a string or a list of validation errors) on one line."""
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {err.get('msg', '')}" if loc else str(err.get("msg", "")))
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)
