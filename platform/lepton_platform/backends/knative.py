"""The Knative backend (`backend: knative`): the same `/v1` API, but a revision becomes a
Knative Revision of the function's Service, with its Triggers, PingSources and a Secret.

Pods hold no S3 or cluster credentials: each gets the platform's in-cluster URL and a token
scoped to its revision from the function's Secret, fetches its artifact from the platform
(`GET /v1/artifacts/{digest}`) unless the image has it baked in, and reaches its buckets
through the platform, exactly as a replica on one machine does. `/fn/NAME` goes through the
same router to the Service's URL. Events are forwarded to the Knative Broker (`broker_url`),
whose Triggers deliver them.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import metadata
from typing import TYPE_CHECKING, Any, AsyncIterator

import aiohttp
from packaging.requirements import Requirement

from lepton.spec import FunctionSpec
from lepton_platform.errors import DeployFailed
from lepton_platform.store import Revision

if TYPE_CHECKING:
    from lepton_knative.deploy import Plan
    from lepton_platform.service import Platform

logger = logging.getLogger("lepton.platform.knative")
UNAVAILABLE = "http://unavailable.invalid"
LOG_POLL = 2.0


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


def runtime_packages() -> dict[str, str]:
    """What the default runtime image holds: lepton and everything its core dependencies
    pull in (no extras), at the versions installed with this platform (both come from the
    same lock). knative/Dockerfile records the same list in /opt/lepton/packages.txt."""
    found: dict[str, str] = {}
    pending = ["lepton"]
    while pending:
        name = pending.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return found


def unmet(requirements: tuple[str, ...], packages: dict[str, str]) -> list[str]:
    """The requirements `packages` (name -> version) do not satisfy."""
    out = []
    for line in requirements:
        req = Requirement(line)
        version = packages.get(req.name.lower().replace("_", "-"))
        if version is None or (req.specifier and not req.specifier.contains(version, prereleases=True)):
            out.append(line)
    return out


class KnativeBackend:
    name = "knative"

    def __init__(self, platform: Platform) -> None:
        from lepton_knative.cluster import Cluster

        self.platform = platform
        self.config = platform.config.knative
        self.cluster = Cluster(kubeconfig=self.config.kubeconfig)
        self.packages = runtime_packages()

    async def start(self) -> None:
        """Knative runs everything; nothing to start here."""

    async def stop(self) -> None:
        """Nothing runs here."""

    def health(self) -> dict[str, Any]:
        return {"backend": "knative", "namespace": self.config.namespace}

    def _target(self, revision: Revision) -> Any:
        from lepton_knative.manifests import Target

        return Target(namespace=self.config.namespace, broker=self.config.broker, image=revision.image or self.config.image,
                      digest=revision.digest, platform_url=self.config.platform_url)

    def _plan(self, revision: Revision) -> Plan:
        from lepton_knative.deploy import plan
        from lepton_knative.manifests import RenderError
        from lepton_knative.validation import ManifestError

        try:
            return plan(revision.spec, self._target(revision))
        except (RenderError, ManifestError) as exc:
            raise DeployFailed(f"function {revision.function!r} cannot run on Knative: {exc}") from None

    def _tokens(self, *revisions: tuple[Revision, Plan]) -> dict[str, str]:
        return {p.token_key: self.platform.credentials.scoped_token(r.id) for r, p in revisions}

    # -- deploys -----------------------------------------------------------------------------

    def check(self, spec: FunctionSpec, digest: str, image: str) -> list[str]:
        """The default runtime image holds lepton and its dependencies, nothing more: a
        function that needs more runs in an image of its own (`lepton build`)."""
        missing = [] if image else unmet(spec.requirements, self.packages)  # an image of the user's: `lepton build` installed them
        if missing:
            raise DeployFailed(f"function {spec.name!r}: requirement {missing[0]!r} is not in the runtime image "
                               f"{self.config.image}; run `lepton build FILE --tag IMAGE` and deploy with --image IMAGE")
        self._plan(Revision(f"{spec.name}-check", spec.name, 0, "", digest, spec, 0.0, "checking", image=image))
        return []

    async def install(self, revision: Revision, missing: list[str]) -> None:
        """Images carry their packages; nothing is installed at deploy time."""

    async def restore(self, revision: Revision) -> KnativeFleet:
        """Route to the Service's URL whatever its Ready condition: a Service whose newest
        revision failed still serves the previous one there."""
        from lepton_knative.cluster import ClusterError

        try:
            current = await asyncio.to_thread(self.cluster.find, "Service", self.config.namespace, revision.function)
        except ClusterError as exc:
            logger.error("function %s: cannot read its Knative Service: %s", revision.function, exc)
            current = None
        url = (current or {}).get("status", {}).get("url")
        if not url:
            logger.error("function %s: its Knative Service has no URL; calls fail until it is redeployed", revision.function)
        return KnativeFleet(revision, url or UNAVAILABLE)

    async def prove(self, revision: Revision, current: Revision | None, *, rollback: bool = False) -> str:
        """Create the revision's Knative Revision beside the serving one and wait until it is
        ready; returns its name. A rollback to a Revision the cluster still has creates
        nothing."""
        from lepton_knative import deploy
        from lepton_knative.cluster import ClusterError

        new = self._plan(revision)
        if rollback:
            existing = await asyncio.to_thread(self.cluster.find, "Revision", self.config.namespace, new.revision)
            if existing is not None:
                return new.revision
        pairs = [(revision, new)]
        serving = None
        if current is not None and current.backend_ref:
            serving = current.backend_ref
            pairs.append((current, self._plan(current)))
        try:
            await asyncio.to_thread(deploy.start, self.cluster, new, serving, self._tokens(*pairs), timeout=self.config.ready_timeout)
        except ClusterError as exc:
            raise DeployFailed(f"revision {revision.id} failed on Knative; the previous revision keeps serving. {exc}") from None
        self.platform.store.set_backend_ref(revision.id, new.revision)
        return new.revision

    async def route(self, revision: Revision, proof: str, serving: Any) -> KnativeFleet:
        from lepton_knative import deploy
        from lepton_knative.cluster import ClusterError

        new = self._plan(revision)
        try:
            current = await asyncio.to_thread(self.cluster.find, "Service", self.config.namespace, revision.function)
            template = None
            if current is not None and current["spec"]["template"]["metadata"].get("name") != new.revision:
                template = current["spec"]["template"]  # a rollback: keep the newest template as it is
            final = await asyncio.to_thread(deploy.route, self.cluster, new, self._tokens((revision, new)), template=template,
                                            timeout=self.config.ready_timeout)
        except ClusterError as exc:
            raise DeployFailed(f"revision {revision.id} is ready on Knative but could not take its traffic: {exc}") from None
        self.platform.store.set_backend_ref(revision.id, new.revision)
        revision = self.platform.store.revision(revision.id) or revision
        url = final.get("status", {}).get("url")
        if not url:
            raise DeployFailed(f"Service {revision.function} is ready but has no status.url")
        if isinstance(serving, KnativeFleet):
            serving.switch(revision, url)
            return serving
        return KnativeFleet(revision, url)

    async def remove(self, function: str, serving: Any) -> None:
        from lepton_knative.cluster import ClusterError

        try:
            gone = await asyncio.to_thread(self.cluster.delete_function, self.config.namespace, function)
        except ClusterError as exc:
            raise DeployFailed(f"function {function!r}: could not delete it from the cluster: {exc}") from None
        logger.info("removed %s from the cluster: %s", function, ", ".join(gone) or "nothing was there")
        await serving.close()

    # -- what runs ---------------------------------------------------------------------------

    async def status(self, serving: Any) -> dict[str, Any]:
        """Counts from the serving Knative Revision's status, replicas from its pods."""
        from lepton_knative.cluster import ClusterError, condition

        revision: Revision = serving.revision
        out: dict[str, Any] = {"revision": revision.id, "knative_revision": revision.backend_ref or None,
                               "service_url": serving.remote.url, "in_flight": 0, "panic": False}
        try:
            found, pods = await asyncio.gather(
                asyncio.to_thread(self.cluster.find, "Revision", self.config.namespace, revision.backend_ref) if revision.backend_ref
                else asyncio.sleep(0, None),
                asyncio.to_thread(self.cluster.pods, self.config.namespace, revision.function))
        except ClusterError as exc:
            return {**out, "ready": 0, "replicas": 0, "desired": 0, "replica_details": [], "error": str(exc)}
        status = (found or {}).get("status", {})
        mine = [p for p in pods if p["revision"] == revision.backend_ref]
        ready = condition(found or {})
        return {**out, "ready": sum(1 for p in mine if p["ready"]), "replicas": status.get("actualReplicas", len(mine)),
                "desired": status.get("desiredReplicas", 0), "revision_ready": (ready or {}).get("status"),
                "replica_details": pods}

    async def logs(self, function: str, tail: int, follow: bool) -> AsyncIterator[bytes]:
        """The function container's log of every pod of the Service, each line prefixed with
        its pod; with `follow`, polled (the API's follow streams one pod at a time)."""
        from lepton_knative.cluster import ClusterError
        from lepton_knative.manifests import CONTAINER

        seen: dict[str, int] = {}
        first = True
        while first or (follow and function in self.platform.fleets):
            if not first:
                await asyncio.sleep(LOG_POLL)
            try:
                pods = await asyncio.to_thread(self.cluster.pods, self.config.namespace, function)
                for pod in pods:
                    text = await asyncio.to_thread(self.cluster.pod_log, self.config.namespace, pod["id"], CONTAINER, None)
                    lines = text.splitlines(keepends=True)
                    start = seen.get(pod["id"], max(0, len(lines) - tail) if first else 0)
                    for line in lines[start:]:
                        yield f"[{pod['id']}] ".encode() + line.encode()
                    seen[pod["id"]] = len(lines)
            except ClusterError as exc:
                yield f"error: {exc}\n".encode()
                return
            first = False
