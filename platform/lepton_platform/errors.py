"""The platform's operation errors, shared by the service, its backends and the API."""

from __future__ import annotations

from lepton.errors import LeptonError


class NotFound(LeptonError):
    pass


class DeployFailed(LeptonError):
    """The new revision did not become ready; the one serving before keeps serving."""
