"""The platform's operation errors, shared by the service, its backends and the API.

Each carries the HTTP status the API answers with (`LeptonError.status`); the API has one
handler for all of them (`control_api.py`)."""

from __future__ import annotations

from collections.abc import Mapping

from lepton.errors import LeptonError


class NotFound(LeptonError):
    """What the request names is not there: a function, revision, job, key, trigger..."""

    status = 404


class Conflict(LeptonError):
    """The request is well formed, but what it would change is in a state that refuses it."""

    status = 409


class DeployFailed(LeptonError):
    """The new revision did not become ready; the one serving before keeps serving."""

    status = 422


class Denied(LeptonError):
    """The caller may not do this: 401 when it brought no usable credentials (with the
    `WWW-Authenticate` challenge in `headers`), 403 when they do not reach what it asked for."""

    status = 403

    def __init__(self, message: str, status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if headers is not None:
            self.headers = headers
