"""The platform service's Knative backend (`backend: knative`): the same `/v1` API, but a
deploy becomes a Knative Service (with its Triggers and PingSources) instead of local replicas.

A deploy uploads the artifact to the artifacts bucket on S3, renders and validates the objects,
applies them and waits for Ready; Knative keeps the previous revision serving until then, and
whenever the new one fails. `/fn/NAME` goes through the same router and activator to the
Service's URL. The broker forwards accepted events to the Knative Broker (`broker_url`), so
Knative Triggers do the delivery.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from lepton.spec import FunctionSpec
from lepton_platform.config import Config
from lepton_platform.store import Revision


class RemoteService:
    """What the proxy needs of a replica, for a Knative Service: a pooled session to its URL."""

    def __init__(self, revision: Revision, url: str) -> None:
        self.id = f"{revision.id} at {url}"
        self.revision = revision
        self.url = url
        self.session = aiohttp.ClientSession(url, auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"),
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


class KnativeFleet:
    """Stands where a Fleet stands for the router, activator and API. Knative scales the
    Service itself, so there is nothing to reconcile and no cold start to see from here."""

    def __init__(self, revision: Revision, url: str) -> None:
        self.revision = revision
        self.remote = RemoteService(revision, url)

    @property
    def name(self) -> str:
        return self.revision.function

    @property
    def spec(self) -> FunctionSpec:
        return self.revision.spec

    def start(self) -> None:
        """Nothing runs here: Knative runs the Service."""

    async def close(self) -> None:
        await self.remote.session.close()

    async def acquire(self, timeout: float) -> tuple[RemoteService, bool]:
        return self.remote, False

    def release(self, remote: RemoteService) -> None:
        """Knative's own activator and queue-proxy track concurrency."""

    def switch(self, revision: Revision, url: str) -> None:
        old = self.remote
        self.revision = revision
        if url != old.url:
            self.remote = RemoteService(revision, url)
            # Requests in flight finish on the old session; close it once they have had time.
            loop = asyncio.get_running_loop()
            loop.call_later(revision.spec.timeout + 5, lambda: loop.create_task(old.session.close()))
        else:
            self.remote.revision = revision

    def status(self) -> dict[str, Any]:
        return {"revision": self.revision.id, "backend": "knative", "service_url": self.remote.url,
                "ready": 1, "replicas": 1, "desired": 1, "in_flight": 0, "panic": False, "replica_details": []}


class KnativeBackend:
    def __init__(self, config: Config) -> None:
        from lepton_knative.cluster import Cluster

        self.config = config.knative
        self.s3 = config.storage.s3
        self.cluster = Cluster(kubeconfig=self.config.kubeconfig)

    def _target(self, digest: str) -> Any:
        from lepton_knative.deploy import artifact_url
        from lepton_knative.manifests import Target

        return Target(namespace=self.config.namespace, broker=self.config.broker, image=self.config.image,
                      artifact_url=artifact_url(self.config.artifact_bucket, digest), digest=digest, s3_endpoint=self.s3.endpoint_url)

    def deploy(self, revision: Revision, artifact: bytes) -> str:
        """Blocking: upload, render, validate, apply, wait for Ready; returns the Service URL.
        Raises ClusterError or ManifestError with one readable line."""
        from lepton_knative.deploy import apply_all, upload_artifact
        from lepton_knative.manifests import render
        from lepton_knative.validation import ensure_valid

        objects = render(revision.spec, self._target(revision.digest))
        ensure_valid(objects)
        upload_artifact(artifact, revision.digest, self.config.artifact_bucket, endpoint_url=self.s3.endpoint_url, region=self.s3.region,
                        credentials={"aws_access_key_id": self.s3.access_key_id, "aws_secret_access_key": self.s3.secret_access_key})
        started = time.monotonic()
        (result,) = apply_all(self.cluster, objects, timeout=self.config.ready_timeout)
        if not result["url"]:
            raise RuntimeError(f"Service {revision.function} is ready but has no status.url after {time.monotonic() - started:.0f}s")
        return result["url"]

    def url(self, function: str) -> str | None:
        """The Service's URL as the cluster reports it (used when the platform restarts)."""
        from lepton_knative.cluster import ClusterError, condition

        probe = {"kind": "Service", "metadata": {"name": function, "namespace": self.config.namespace}}
        try:
            current = self.cluster.get(probe)
        except ClusterError:
            return None
        ready = condition(current)
        return current.get("status", {}).get("url") if ready and ready.get("status") == "True" else None

    def remove(self, function: str) -> list[str]:
        return self.cluster.delete_function(self.config.namespace, function)
