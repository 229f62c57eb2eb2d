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
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import aiohttp
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lepton.runtime import logstamp
from lepton.spec import FunctionSpec
from lepton_platform.catalog import Revision
from lepton_platform.errors import DeployFailed, NotFound
from lepton_platform.logfiles import LogQuery, api_time, unstamped
from lepton_platform.traffic import Routes, Traffic
from lepton_platform.vault import SecretError

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
        self.session = aiohttp.ClientSession(
            url,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )


class KnativeFleet:
    """Stands where a Fleet stands for the router, activator and API. Knative scales the
    Service itself, so there is nothing to reconcile and no cold start to see from here."""

    def __init__(self, revision: Revision, url: str) -> None:
        self.revision = revision
        self.remote = RemoteService(revision, url)
        self.problem: str | None = None  # set when it serves but its triggers are not in place

    @property
    def name(self) -> str:
        return self.revision.function

    @property
    def spec(self) -> FunctionSpec:
        return self.revision.spec

    async def close(self) -> None:
        await self.remote.session.close()

    async def acquire(self, timeout: float, *, bounded: bool = True) -> tuple[RemoteService, bool]:
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
    pull in (no extras), at the versions installed with this platform. The images install
    the same pinned direct dependencies; a transitive one may differ in its patch version.
    knative/Dockerfile records the image's own list in /opt/lepton/packages.txt."""
    found: dict[str, str] = {}
    pending = ["lepton"]
    while pending:
        name = pending.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = canonicalize_name(dist.metadata["Name"])
        if key in found:
            continue
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                pending.append(req.name)
    return found


def unmet(requirements: tuple[str, ...], packages: dict[str, str]) -> list[str]:
    """The requirements (for this Python, by their markers) that `packages` does not satisfy."""
    out = []
    for line in requirements:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = packages.get(canonicalize_name(req.name))
        if version is None or (req.specifier and not req.specifier.contains(version, prereleases=True)):
            out.append(line)
    return out


def service_url(service: dict[str, Any] | None) -> str | None:
    """Where the platform reaches a Service: its cluster-local address (a public Service's
    status.url is an external domain the platform's pod may not resolve)."""
    status = (service or {}).get("status", {})
    url: str | None = (status.get("address") or {}).get("url") or status.get("url")
    return url


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
        return {"namespace": self.config.namespace}

    def _target(self, revision: Revision) -> Any:
        from lepton_knative.manifests import Target

        return Target(
            namespace=self.config.namespace,
            broker=self.config.broker,
            image=revision.image or self.config.image,
            digest=revision.digest,
            platform_url=self.config.platform_url,
            revision=revision.id,
        )

    def _plan(self, revision: Revision) -> Plan:
        from lepton_knative.deploy import plan
        from lepton_knative.manifests import RenderError
        from lepton_knative.validation import ManifestError

        try:
            return plan(revision.spec, self._target(revision))
        except (RenderError, ManifestError) as exc:
            raise DeployFailed(f"function {revision.function!r} cannot run on Knative: {exc}") from None

    def _tokens(self, *revisions: Revision | None) -> dict[str, str]:
        """Secret entries (key -> scoped token) for these revisions."""
        from lepton_knative.manifests import token_key

        return {token_key(r.id): self.platform.credentials.scoped_token(r) for r in revisions if r is not None}

    async def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking cluster step in a thread; its ClusterError becomes DeployFailed."""
        from lepton_knative.cluster import ClusterError
        from lepton_knative.manifests import RenderError
        from lepton_knative.validation import ManifestError

        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (ClusterError, RenderError, ManifestError) as exc:
            raise DeployFailed(f"{what}: {exc}") from None

    # -- deploys -----------------------------------------------------------------------------

    def check(self, spec: FunctionSpec, digest: str, image: str) -> list[str]:
        """The default runtime image holds lepton and its dependencies, nothing more: a
        function that needs more runs in an image of its own (`lepton build`), which is
        trusted to hold what its function needs."""
        missing = [] if image else unmet(spec.requirements, self.packages)
        if missing:
            raise DeployFailed(
                f"function {spec.name!r}: requirement {missing[0]!r} is not in the runtime image "
                f"{self.config.image}; run `lepton build FILE --tag IMAGE` and deploy with --image IMAGE"
            )
        self._plan(Revision(f"{spec.name}-check", spec.name, 0, "", digest, spec, 0.0, "checking", image=image))
        return []

    async def install(self, revision: Revision, missing: list[str]) -> None:
        """Images carry their packages; nothing is installed at deploy time."""

    async def restore(self, revision: Revision) -> KnativeFleet:
        """Route to the Service's address whatever its Ready condition: a Service whose
        newest revision failed still serves the previous one there."""
        from lepton_knative.cluster import ClusterError

        try:
            current = await asyncio.to_thread(self.cluster.find, "Service", self.config.namespace, revision.function)
        except ClusterError as exc:
            logger.error("function %s: cannot read its Knative Service: %s", revision.function, exc)
            current = None
        url = service_url(current)
        if not url:
            logger.error("function %s: its Knative Service has no address; calls fail until it is redeployed", revision.function)
        return KnativeFleet(revision, url or UNAVAILABLE)

    async def _exists(self, knative_revision: str) -> bool:
        if not knative_revision:
            return False
        found = await self._call("cannot read the cluster", self.cluster.find, "Revision", self.config.namespace, knative_revision)
        return found is not None

    async def prove(self, revision: Revision, current: Revision | None, *, rollback: bool = False) -> str:
        """Create the revision's Knative Revision beside the serving one and wait until it is
        ready; returns its name. A rollback to a Revision the cluster still has creates
        nothing."""
        from lepton_knative import deploy

        if rollback and await self._exists(revision.backend_ref):
            return revision.backend_ref
        new = self._plan(revision)
        # Pin the traffic where it is while the new revision starts (a split and its tags
        # stay as they are); if the serving Revision is gone (deleted by hand), there is
        # nothing to keep serving.
        serving: str | list[dict[str, Any]] | None = None
        tokens = self._tokens(revision)
        routes = self.platform.splits.get(revision.function)
        if routes is not None:
            serving, others = self._targets(routes.traffic)
            tokens = self._tokens(revision, *others)
        elif current is not None and await self._exists(current.backend_ref):
            serving = current.backend_ref
            tokens = self._tokens(revision, current)
        await self._call(
            f"revision {revision.id} failed on Knative; the previous revision keeps serving",
            deploy.start,
            self.cluster,
            new,
            serving,
            tokens,
            timeout=self.config.ready_timeout,
        )
        self.platform.catalog.set_backend_ref(revision.id, new.revision)
        return new.revision

    async def route(self, revision: Revision, proof: str, serving: Any) -> KnativeFleet:
        """Move the traffic to the proven Knative Revision, then put the revision's triggers
        in place. Once the route has moved, the revision serves: a trigger that does not
        become ready is reported on the function, not as a failed deploy."""
        from lepton_knative import deploy

        new = self._plan(revision)
        previous = serving.revision if isinstance(serving, KnativeFleet) else None
        current = await self._call("cannot read the cluster", self.cluster.find, "Service", self.config.namespace, revision.function)
        template = (current or {}).get("spec", {}).get("template")
        if not template or template.get("metadata", {}).get("name") == new.revision:
            template = None  # a deploy: the template on the cluster is this revision's own
        # else a rollback to an older Revision: the newest template stays exactly as it is
        final = await self._call(
            f"revision {revision.id} is ready on Knative but could not take its traffic",
            deploy.move,
            self.cluster,
            new,
            proof,
            self._tokens(revision, previous),
            template=template,
            timeout=self.config.ready_timeout,
        )
        self.platform.catalog.set_backend_ref(revision.id, proof)
        revision = self.platform.catalog.revision(revision.id) or revision
        url = service_url(final) or UNAVAILABLE
        if isinstance(serving, KnativeFleet):
            fleet = serving
            fleet.switch(revision, url)
        else:
            fleet = KnativeFleet(revision, url)
        try:
            gone = await self._call("its triggers", deploy.attach, self.cluster, new, timeout=self.config.ready_timeout)
            fleet.problem = None
            if gone:
                logger.info("%s: removed %s", revision.function, ", ".join(gone))
        except DeployFailed as exc:
            fleet.problem = f"revision {revision.id} serves, but {exc}"
            logger.error("%s", fleet.problem)
        return fleet

    async def split(self, traffic: Traffic, revisions: dict[str, Revision], current: Routes, proof: Any = None) -> Routes:
        """Traffic shared and tagged by the Service's `spec.traffic`: Knative's route picks a
        revision per request, so the platform sends untagged calls to the Service and tagged
        ones to the tag's own address. The main revision's triggers are put in place."""
        from lepton_knative import deploy

        main = revisions[traffic.main]
        targets, _ = self._targets(traffic, revisions)
        new = self._plan(main)
        found = await self._call("cannot read the cluster", self.cluster.find, "Service", self.config.namespace, main.function)
        template = (found or {}).get("spec", {}).get("template")  # the newest template stays as it is
        final = await self._call(
            f"function {main.function!r}: the traffic could not move",
            deploy.move,
            self.cluster,
            new,
            targets,
            self._tokens(*revisions.values()),
            template=template,
            timeout=self.config.ready_timeout,
        )
        url = service_url(final) or UNAVAILABLE
        fleet = current.main if isinstance(current.main, KnativeFleet) else KnativeFleet(main, url)
        fleet.switch(main, url)
        before = {id(f): f for f in current.all() if f is not current.main}
        tagged = {}
        for tag, rev_id in sorted(traffic.tags.items()):
            old = current.pick(tag)
            address = tag_url(url, tag)
            if old is not None and old is not current.main:
                old.switch(revisions[rev_id], address)
                tagged[tag] = old
            else:
                tagged[tag] = KnativeFleet(revisions[rev_id], address)
            before.pop(id(tagged[tag]), None)
        loop = asyncio.get_running_loop()

        def close(fleet: KnativeFleet) -> None:
            loop.create_task(fleet.close())

        for old in before.values():  # requests in flight finish first
            loop.call_later(old.spec.timeout + 5, close, old)
        try:
            await self._call("its triggers", deploy.attach, self.cluster, new, timeout=self.config.ready_timeout)
            fleet.problem = None
        except DeployFailed as exc:
            fleet.problem = f"revision {main.id} serves, but {exc}"
            logger.error("%s", fleet.problem)
        return Routes(traffic, {traffic.main: fleet}, tagged=tagged, weighted=False)

    def _targets(self, traffic: Traffic, revisions: dict[str, Revision] | None = None) -> tuple[list[dict[str, Any]], list[Revision]]:
        """`spec.traffic` for a split (by the Knative Revisions' names), and its revisions."""
        from lepton_knative.manifests import split

        found = revisions if revisions is not None else {r: self.platform.catalog.revision(r) for r in traffic.revisions}
        refs = {rev_id: (revision.backend_ref if revision else "") for rev_id, revision in found.items()}
        if missing := sorted(rev_id for rev_id, ref in refs.items() if not ref):
            raise DeployFailed(f"revision {missing[0]} has no Knative Revision on the cluster; deploy it again")
        targets = split({refs[r]: pct for r, pct in traffic.split.items()}, {tag: refs[r] for tag, r in traffic.tags.items()})
        return targets, [r for r in found.values() if r is not None]

    async def remove(self, function: str, serving: Any) -> None:
        gone = await self._call(
            f"function {function!r}: could not delete it from the cluster", self.cluster.delete_function, self.config.namespace, function
        )
        logger.info("removed %s from the cluster: %s", function, ", ".join(gone) or "nothing was there")
        await serving.close()

    # -- secrets -----------------------------------------------------------------------------

    async def put_secret(self, name: str, value: str) -> None:
        """Write Lepton secret `name` as its Kubernetes Secret (`lepton-secret-...`), which the
        Services declaring it refer to. Pods started from now on read the new value; running
        ones keep the one they started with (the Service is not rolled)."""
        from lepton_knative.manifests import USER_SECRET_LABEL, user_secret

        await self._secret_call(name, self.cluster.apply_named_secret, user_secret(name, value, self.config.namespace), USER_SECRET_LABEL)

    def renew(self, serving: Any) -> bool:
        return False  # the Service is not rolled: pods started from now on read the new value

    async def delete_secret(self, name: str) -> None:
        from lepton_knative.manifests import USER_SECRET_LABEL, user_secret_name

        await self._secret_call(name, self.cluster.delete_named_secret, self.config.namespace, user_secret_name(name), USER_SECRET_LABEL)

    async def _secret_call(self, name: str, fn: Any, *args: Any) -> Any:
        from lepton_knative.cluster import ClusterError

        try:
            return await asyncio.to_thread(fn, *args)
        except ClusterError as exc:
            raise SecretError(f"secret {name}: {exc}", 409 if exc.api_status == 409 else 502) from exc

    # -- what runs ---------------------------------------------------------------------------

    async def replica_metrics(self) -> bytes:
        """Nothing: Prometheus scrapes the pods themselves (knative/install/components/monitoring)."""
        return b""

    async def status(self, serving: Any) -> dict[str, Any]:
        """Counts from the serving Knative Revision's status, replicas from its pods."""
        from lepton_knative.cluster import ClusterError, condition

        revision: Revision = serving.revision
        out: dict[str, Any] = {
            "revision": revision.id,
            "knative_revision": revision.backend_ref or None,
            "service_url": serving.remote.url,
            "in_flight": 0,
            "panic": False,
        }
        if serving.problem:
            out["error"] = serving.problem
        try:
            found = (
                await asyncio.to_thread(self.cluster.find, "Revision", self.config.namespace, revision.backend_ref)
                if revision.backend_ref
                else None
            )
            pods = await asyncio.to_thread(self.cluster.pods, self.config.namespace, revision.function)
        except ClusterError as exc:
            return {**out, "ready": 0, "replicas": 0, "desired": 0, "replica_details": [], "error": str(exc)}
        status = (found or {}).get("status", {})
        mine = [p for p in pods if p["revision"] == revision.backend_ref]
        ready = condition(found or {})
        return {
            **out,
            "ready": sum(1 for p in mine if p["ready"]),
            "replicas": status.get("actualReplicas", len(mine)),
            "desired": status.get("desiredReplicas", 0),
            "revision_ready": (ready or {}).get("status"),
            "replica_details": pods,
        }

    async def logs(self, function: str, query: LogQuery) -> AsyncIterator[bytes]:
        """The function container's log of the Service's pods (those whose name starts with
        `query.replica`), each line as `TIME POD - TEXT` with the API's time (logfiles.py),
        merged by time: the last `tail` lines overall, then (with `follow`) new lines every
        LOG_POLL seconds. A `replica` that matches no pod now is NotFound."""
        from lepton_knative.cluster import ClusterError

        if query.replica:
            try:
                pods = await asyncio.to_thread(self.cluster.pods, self.config.namespace, function)
            except ClusterError:
                pass  # the stream says why
            else:
                if not any(pod["id"].startswith(query.replica) for pod in pods):
                    raise NotFound(
                        f"function {function!r} has no pod {query.replica!r} (nor one whose name starts so); "
                        f"`lepton info {function}` lists its pods"
                    )
        return self._pod_logs(function, query)

    async def _pod_logs(self, function: str, query: LogQuery) -> AsyncIterator[bytes]:
        """A pod that cannot give its log now (still starting: the API answers 400) is asked
        again at the next poll."""
        from lepton_knative.cluster import ClusterError
        from lepton_knative.manifests import CONTAINER

        seen: dict[str, set[bytes]] = {}
        fetched: dict[str, float] = {}
        cutoff = query.cutoff
        first = True
        tail: int | None
        since: int | None
        while first or (query.follow and function in self.platform.fleets):
            if not first:
                await asyncio.sleep(LOG_POLL)
            try:
                pods = await asyncio.to_thread(self.cluster.pods, self.config.namespace, function)
            except ClusterError as exc:
                yield f"error: {exc}\n".encode()
                return
            found: list[list[tuple[bytes, bytes]]] = []
            for pod in pods:
                name = pod["id"]
                if query.replica and not name.startswith(query.replica):
                    continue
                # After the first read, ask for the time since the last one (with a margin):
                # the overlap is dropped by value, since each line carries its timestamp.
                if name in seen:
                    tail, since = None, int(time.monotonic() - fetched[name]) + 5
                else:
                    tail, since = query.tail, None if query.since is None else max(1, math.ceil(time.time() - query.since) + 1)
                started = time.monotonic()
                try:
                    text = await asyncio.to_thread(self.cluster.pod_log, self.config.namespace, name, CONTAINER, tail=tail, since=since)
                except ClusterError as exc:
                    if exc.api_status not in (400, 404):  # 400: still starting; 404: just gone
                        yield f"error: {exc}\n".encode()
                    continue
                fetched[name] = started
                window = [line for line in text.encode().split(b"\n") if line]
                lines = [pod_line(name, line) for line in window if line not in seen.get(name, ())]
                found.append([line for line in lines if not cutoff or line[0] >= cutoff])
                seen[name] = set(window)
            merged: Iterable[tuple[bytes, bytes]] = heapq.merge(*found, key=lambda line: line[0])
            if first:
                merged = deque(merged, maxlen=query.tail) if query.tail else ()
            chunk = b"".join(line for _, line in merged)
            if chunk:
                yield chunk
            first = False


def pod_line(pod: str, line: bytes) -> tuple[bytes, bytes]:
    """A line of the API's log (`RFC3339NANO TEXT`) as the platform serves it, with its time."""
    stamp, _, text = line.partition(b" ")
    when = api_time(stamp)
    if when is None:  # no time from the API: when it was read
        when, text = logstamp.stamp(time.time()).encode(), line
    return when, unstamped(when, pod, text)


def tag_url(service: str, tag: str) -> str:
    """Where the platform reaches a tag of a Service: Knative routes `TAG-NAME` beside the
    Service's own host. status.traffic[].url is the external address, which the platform's pod
    may not resolve, so the cluster-local host is used with the tag in front."""
    if service == UNAVAILABLE:
        return UNAVAILABLE
    scheme, _, rest = service.partition("://")
    return f"{scheme}://{tag}-{rest}"
