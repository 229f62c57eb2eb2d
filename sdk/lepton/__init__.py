"""Lepton: serverless functions for AI workloads.

    import lepton

    @lepton.function(max_scale=4)
    def add(a: int, b: int) -> int:
        return a + b

`lepton run handler.py` serves it here; `lepton deploy handler.py` puts it on the platform.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lepton.errors import (
    ArtifactError,
    ConnectError,
    InvocationError,
    JobCancelled,
    JobFailed,
    JobTimeout,
    LeptonError,
    LoadError,
    SpecError,
)
from lepton.functions import Function, asgi, function
from lepton.spec import Batch, FunctionSpec, Retries
from lepton.triggers import Delivery, on_bucket, on_cron, on_event

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

    from lepton.artifacts import Artifact, package
    from lepton.buckets import Bucket, bucket
    from lepton.client import Client
    from lepton.jobs import Job
    from lepton.optimize import optimize
    from lepton.web import Request, Response, UploadedFile, job_id

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "ArtifactError",
    "Batch",
    "Bucket",
    "Client",
    "CloudEvent",
    "ConnectError",
    "Delivery",
    "Function",
    "FunctionSpec",
    "InvocationError",
    "LeptonError",
    "LoadError",
    "SpecError",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobTimeout",
    "Request",
    "Response",
    "Retries",
    "UploadedFile",
    "asgi",
    "bucket",
    "function",
    "job_id",
    "optimize",
    "on_bucket",
    "on_cron",
    "on_event",
    "package",
]

# Imported on first use: they pull in httpx and tarfile, which a replica that only serves
# does not need at start-up.
_LAZY = {
    "CloudEvent": ("cloudevents.core.v1.event", "CloudEvent"),
    "Client": ("lepton.client", "Client"),
    "Job": ("lepton.jobs", "Job"),
    "Bucket": ("lepton.buckets", "Bucket"),
    "bucket": ("lepton.buckets", "bucket"),
    "optimize": ("lepton.optimize", "optimize"),
    "Artifact": ("lepton.artifacts", "Artifact"),
    "package": ("lepton.artifacts", "package"),
    "Request": ("lepton.web", "Request"),
    "Response": ("lepton.web", "Response"),
    "UploadedFile": ("lepton.web", "UploadedFile"),
    "job_id": ("lepton.web", "job_id"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lepton' has no attribute {name!r}")
