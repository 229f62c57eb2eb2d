"""The platform: state, artifacts and the operations the API exposes (deploy, rollback,
remove), over one backend that runs the functions (`backends/`). One `Platform` per `lepton up`.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

from lepton.artifacts import unpack
from lepton.errors import ArtifactError
from lepton.spec import FunctionSpec
from lepton_platform.auth import Callers, load_or_create_token
from lepton_platform.backends import Backend, open_backend
from lepton_platform.backends.base import Serving
from lepton_platform.broker import Broker
from lepton_platform.buckets import open_store
from lepton_platform.catalog import Catalog, Revision, content_id
from lepton_platform.config import load_config
from lepton_platform.credentials import Credentials
from lepton_platform.errors import DeployFailed, NotFound
from lepton_platform.jobs.runner import JobRunner
from lepton_platform.jobs.store import JobStore
from lepton_platform.keys import Keys
from lepton_platform.logfiles import LogQuery
from lepton_platform.metrics import PlatformMetrics
from lepton_platform.tracing import Tracing
from lepton_platform.traffic import InvalidTraffic, Routes, Traffic, check_tag, validate
from lepton_platform.vault import SecretError, Vault

logger = logging.getLogger("lepton.platform")
MANIFESTS_KEPT = 16

__all__ = ["DeployFailed", "InvalidTraffic", "NotFound", "Platform"]


class Unpacked(NamedTuple):
    """An artifact checked and unpacked: its folder, its manifest, the manifest's functions by name."""

    folder: Path
    manifest: dict[str, Any]
    functions: dict[str, dict[str, Any]]


class Platform:
    def __init__(self, home: Path, *, fork: bool = True, url: str = "http://127.0.0.1:8765") -> None:
        self.home = home
        self.url = url
        home.mkdir(parents=True, exist_ok=True)
        self.config = load_config(home)
        self.token = load_or_create_token(home)
        self.credentials = Credentials(self.token)
        self.catalog = Catalog(home / "state.db")
        self.vault = Vault(home / "state.db", home)
        self.keys = Keys(home / "state.db")
        self.storage = open_store(self.config.storage, home / "buckets")
        self.artifacts = home / "artifacts"
        self.unpacked = home / "unpacked"
        self.logs = home / "logs"
        for folder in (self.artifacts, self.unpacked, self.logs):
            folder.mkdir(exist_ok=True)
        # Unix socket paths are limited to ~107 bytes: keep them short, outside $LEPTON_HOME.
        self.run_dir = Path(tempfile.mkdtemp(prefix="lepton-"))
        self.metrics = PlatformMetrics()
        self.tracing = Tracing(self.config.tracing)
        self.fleets: dict[str, Serving] = {}  # what serves each function's main revision
        self.splits: dict[str, Routes] = {}  # functions whose traffic is split or tagged (traffic.py)
        self.callers = Callers(self)  # who may invoke a private function (router.admit asks it)
        forward = self.config.knative.broker_url if self.config.backend == "knative" else None
        self.broker = Broker(
            home / "events.db", self.token, self.metrics, self.storage.outbox, self._spec_of, forward_to=forward, tracing=self.tracing
        )
        self.jobs = JobRunner(
            JobStore(home / "jobs.db"),
            self.broker,
            self.token,
            self._spec_of,
            ttl=self.config.job_ttl,
            max_result_bytes=self.config.limits.max_job_result_bytes,
            max_queued=self.config.limits.max_queued_jobs,
        )
        self.backend: Backend = open_backend(self, fork=fork)
        self._locks: dict[str, asyncio.Lock] = {}
        self.secrets_lock = asyncio.Lock()  # one secret change at a time: the vault and the cluster see the same order of values
        self._arriving: Counter[str] = Counter()  # new functions being deployed, counted against limits.max_functions
        self._manifests: OrderedDict[str, Unpacked] = OrderedDict()  # by digest, the most recently used last

    def _spec_of(self, function: str) -> FunctionSpec | None:
        fleet = self.fleets.get(function)
        return fleet.spec if fleet else None

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        await self.backend.start()
        for name, revision, traffic in self.catalog.routed():
            try:
                self._unpacked(revision.digest)
            except ArtifactError as exc:
                logger.error("function %s cannot be restored: %s", name, exc)
                continue
            self.fleets[name] = await self.backend.restore(revision)
            if not traffic.simple:
                try:
                    await self._split(name, traffic)
                except (DeployFailed, NotFound, ArtifactError) as exc:
                    logger.error(
                        "function %s: its traffic split and tags cannot be restored, so the platform sends every call "
                        "to its main revision (%s): %s",
                        name,
                        revision.id,
                        exc,
                    )
        await self.broker.start()
        await self.jobs.start()
        # Everything imported and built so far lives as long as the process: keep it out of
        # the cyclic garbage collector's scans, which otherwise show up on the request path.
        gc.freeze()
        logger.info("platform ready: %d functions restored from %s", len(self.fleets), self.home)

    async def stop(self) -> None:
        await self.jobs.stop()
        await self.broker.stop()
        await asyncio.gather(*(fleet.close() for fleet in self.serving()), return_exceptions=True)
        await self.backend.stop()
        self.catalog.close()
        self.vault.close()
        self.keys.close()
        self.storage.close()
        self.tracing.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # -- artifacts -------------------------------------------------------------------------

    def save_artifact(self, digest: str, data: bytes) -> dict[str, Any]:
        """Catalog uploaded bytes under their digest after checking it; returns the manifest."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ArtifactError(f"upload does not match its digest: expected {digest}, got {actual}")
        path = self.artifact_path(actual)
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return self._unpacked(actual)[1]

    def artifact_path(self, digest: str) -> Path:
        return self.artifacts / f"{digest.removeprefix('sha256:')}.tar.gz"

    def _unpacked(self, digest: str) -> tuple[Path, dict[str, Any]]:
        """The artifact's folder and manifest, checked and read once: a deploy of a thousand
        functions from one file asks for the same (large) manifest a thousand times."""
        found = self._manifests.get(digest)
        if found is not None:
            self._manifests.move_to_end(digest)
            return found.folder, found.manifest
        path = self.artifact_path(digest)
        if not path.exists():
            raise ArtifactError(f"artifact {digest} is not on the platform; upload it first")
        folder, manifest = unpack(path, self.unpacked, digest)
        self._manifests[digest] = Unpacked(folder, manifest, {fn["name"]: fn for fn in manifest["functions"]})
        if len(self._manifests) > MANIFESTS_KEPT:
            self._manifests.popitem(last=False)
        return folder, manifest

    # -- operations ------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def prepare(
        self,
        function: str,
        digest: str,
        image: str = "",
        together: Sequence[str] = (),
        *,
        percent: int | None = None,
        tag: str | None = None,
    ) -> tuple[FunctionSpec, Revision | None]:
        """Validate a deploy request (with the other functions deployed `together`, for the
        platform's limits, and the share of traffic it asks for); returns the spec and the
        routed revision if unchanged."""
        self.check_room([function, *together])
        if percent is not None and percent < 100 and function not in self.fleets:
            raise InvalidTraffic(
                f"function {function!r} is not serving yet, so its first revision takes all traffic; deploy it without --traffic first"
            )
        if percent == 0 and tag is None:
            raise InvalidTraffic(f"function {function!r}: a revision deployed at 0% is reachable only through a tag; add --tag")
        if tag is not None:
            check_tag(function, tag)
        self._unpacked(digest)
        specs = self._manifests[digest].functions
        if function not in specs:
            raise NotFound(f"artifact {digest[:19]}... has no function {function!r}; it has {', '.join(sorted(specs))}")
        spec = FunctionSpec.model_validate(specs[function])
        self.backend.check(spec, digest, image)
        self.check_secrets(spec)
        fleet = self.fleets.get(function)
        plain = percent in (None, 100) and tag is None and function not in self.splits  # moves nothing but all traffic
        if plain and fleet is not None and fleet.revision.content == content_id(digest, spec, image):
            return spec, fleet.revision
        return spec, None

    def check_room(self, functions: list[str]) -> None:
        """Refuse a deploy that would take the platform past `limits.max_functions`."""
        held = self.fleets.keys() | self._arriving.keys()
        new = set(functions) - held
        limit = self.config.limits.max_functions
        if new and len(held) + len(new) > limit:
            raise DeployFailed(
                f"the platform holds at most {limit} functions (limits.max_functions in config.yaml); "
                f"{len(held)} are deployed and this deploy adds {len(new)}; nothing was deployed"
            )

    async def deploy(
        self, spec: FunctionSpec, digest: str, image: str = "", *, percent: int | None = None, tag: str | None = None
    ) -> Revision:
        """Prove the new revision starts and passes setup, then move all traffic to it, or
        `percent` of it (a canary), and give it `tag`."""
        self.check_room([spec.name])
        arriving = spec.name not in self.fleets
        if arriving:
            self._arriving[spec.name] += 1
        try:
            return await self._deploy(spec, digest, image, percent, tag)
        finally:
            if arriving:
                self._arriving[spec.name] -= 1
                if not self._arriving[spec.name]:
                    del self._arriving[spec.name]

    async def _deploy(self, spec: FunctionSpec, digest: str, image: str, percent: int | None, tag: str | None) -> Revision:
        async with self._lock(spec.name):
            revision = self.catalog.find_revision(spec.name, content_id(digest, spec, image))
            if revision is None or revision.status == "failed":
                revision = self.catalog.create_revision(spec, digest, image)
            await self._create_buckets(spec)
            started = time.perf_counter()
            current = self.fleets.get(spec.name)
            try:
                self.check_secrets(spec)
                missing = self.backend.check(spec, digest, image)
                if missing:
                    await self.backend.install(revision, missing)
                proof = await self.backend.prove(revision, current.revision if current else None)
            except DeployFailed as exc:
                self.catalog.set_revision_status(revision.id, "failed", str(exc))
                raise
            self.catalog.set_revision_status(revision.id, "ready")
            if spec.name not in self.fleets or ((percent is None or percent >= 100) and tag is None and spec.name not in self.splits):
                revision = await self._route(revision, proof)
                if tag is not None:  # a first deploy with a tag
                    await self._split(spec.name, Traffic.single(revision.id, {tag: revision.id}))
            else:
                traffic = self.traffic_of(spec.name).with_canary(revision.id, 100 if percent is None else percent, tag)
                await self._split(spec.name, traffic, (revision.id, proof))
                revision = self.catalog.revision(revision.id) or revision
            logger.info("%s now serves %s (ready in %.0f ms)", spec.name, revision.id, (time.perf_counter() - started) * 1000)
            return revision

    async def _route(self, revision: Revision, proof: Any) -> Revision:
        self.fleets[revision.function] = await self.backend.route(revision, proof, self.fleets.get(revision.function))
        self.catalog.route(revision.function, Traffic.single(revision.id))
        return self.catalog.revision(revision.id) or revision

    async def _split(self, function: str, traffic: Traffic, proof: tuple[str, Any] | None = None) -> Routes:
        """Serve `traffic`: each revision in it by what serves it now, or by something new."""
        revisions = {}
        for rev_id in traffic.revisions:
            revision = self.catalog.revision(rev_id)
            if revision is None:
                raise NotFound(f"function {function!r} has no revision {rev_id!r}")
            self._unpacked(revision.digest)
            revisions[rev_id] = revision
        current = self.splits.get(function) or Routes(self.traffic_of(function), {self.fleets[function].revision.id: self.fleets[function]})
        routes = await self.backend.split(traffic, revisions, current, proof)
        self.fleets[function] = routes.main
        if traffic.simple:
            self.splits.pop(function, None)
        else:
            self.splits[function] = routes
        self.catalog.route(function, traffic)
        return routes

    def traffic_of(self, function: str) -> Traffic:
        routes = self.splits.get(function)
        return routes.traffic if routes is not None else Traffic.single(self.fleet(function).revision.id)

    def serving(self, function: str | None = None) -> list[Serving]:
        """What serves every revision that takes traffic or has a tag (of one function, or all)."""
        names = [function] if function is not None else list(self.fleets)
        out = []
        for name in names:
            routes = self.splits.get(name)
            if routes is not None:
                out.extend(routes.all())
            elif name in self.fleets:
                out.append(self.fleets[name])
        return out

    async def set_traffic(self, function: str, split: dict[str, int] | None = None, tags: dict[str, str | None] | None = None) -> Traffic:
        """Share the function's traffic between ready revisions and set or remove (None) tags;
        on bad input (InvalidTraffic) routing stays as it was."""
        self.fleet(function)
        async with self._lock(function):
            current = self.traffic_of(function)
            wanted = dict(current.tags)
            for tag, rev_id in (tags or {}).items():
                if rev_id is not None:
                    wanted[tag] = rev_id
                elif wanted.pop(tag, None) is None:
                    raise InvalidTraffic(f"function {function!r} has no tag {tag!r}")
            ready = [r.id for r in self.catalog.revisions(function) if r.status == "ready"]
            traffic = validate(function, current.split if split is None else split, wanted, ready)
            if traffic == current:
                return traffic
            main = self.fleets[function].revision
            joining = [self.catalog.revision(rev_id) for rev_id in set(traffic.revisions) - set(current.revisions)]
            for revision in joining:  # ready revisions of this function (validate checked), so present
                assert revision is not None
                self._unpacked(revision.digest)
                self.check_secrets(revision.spec)
            # A revision that takes traffic again may have to be made anew on the backend (Knative).
            proofs = {revision.id: await self.backend.prove(revision, main, rollback=True) for revision in joining if revision}
            if traffic.simple and function not in self.splits:
                revision = self.catalog.revision(traffic.main)
                assert revision is not None
                await self._route(revision, proofs.get(revision.id))
            else:
                await self._split(function, traffic)
            logger.info("%s: traffic %s, tags %s", function, traffic.split, traffic.tags or "none")
            return traffic

    async def _create_buckets(self, spec: FunctionSpec) -> None:
        """The buckets a function declares or is triggered by exist before it runs."""
        wanted = {*spec.buckets, *(t.bucket for t in spec.triggers if t.kind == "bucket")}
        for bucket in sorted(wanted):
            if await asyncio.to_thread(self.storage.create_bucket, bucket):
                logger.info("created bucket %s for %s", bucket, spec.name)

    async def rollback(self, function: str, rev_id: str | None) -> Revision:
        fleet = self.fleet(function)
        async with self._lock(function):
            revision: Revision | None
            if rev_id is None:
                earlier = [r for r in self.catalog.revisions(function) if r.status == "ready" and r.number < fleet.revision.number]
                if not earlier:
                    raise NotFound(f"function {function!r} has no ready revision before {fleet.revision.id}")
                revision = earlier[-1]
            else:
                revision = self.catalog.revision(rev_id)
                if revision is None or revision.function != function:
                    raise NotFound(f"function {function!r} has no revision {rev_id!r}; see `lepton revisions {function}`")
                if revision.status != "ready":
                    raise DeployFailed(f"revision {rev_id} is {revision.status}; only ready revisions can take traffic")
            self._unpacked(revision.digest)
            self.check_secrets(revision.spec)
            proof = await self.backend.prove(revision, fleet.revision, rollback=True)
            if function not in self.splits:
                return await self._route(revision, proof)
            await self._split(function, Traffic.single(revision.id, self.traffic_of(function).tags), (revision.id, proof))
            return self.catalog.revision(revision.id) or revision

    async def remove(self, function: str) -> None:
        fleet = self.fleet(function)
        async with self._lock(function):
            # Unroutable first (new calls get 404, the broker stops delivering), then stopped;
            # if the backend cannot remove it, it stays as it was.
            del self.fleets[function]
            routes = self.splits.pop(function, None)
            try:
                await self.backend.remove(function, fleet)
            except DeployFailed:
                self.fleets[function] = fleet
                if routes is not None:
                    self.splits[function] = routes
                raise
            if routes is not None:
                await asyncio.gather(*(f.close() for f in routes.all() if f is not fleet), return_exceptions=True)
            await self.broker.remove_function(function)
            self.catalog.delete_function(function)
            self.metrics.forget(function)
            shutil.rmtree(self.logs / function, ignore_errors=True)

    def check_secrets(self, spec: FunctionSpec) -> None:
        """Every secret the function declares is set and readable with the current key."""
        if not spec.secrets:
            return
        if missing := self.vault.missing(spec.secrets):
            raise DeployFailed(
                f"function {spec.name!r} declares secret{'s' if len(missing) > 1 else ''} {', '.join(missing)}, "
                f"which {'are' if len(missing) > 1 else 'is'} not set: `lepton secret set NAME` first; "
                "nothing was deployed"
            )
        try:
            self.vault.values(spec.secrets)
        except SecretError as exc:
            raise DeployFailed(f"function {spec.name!r}: {exc}; nothing was deployed") from None

    async def secrets_changed(self, name: str) -> list[str]:
        """Replace the replicas of every function whose serving revision declares secret
        `name`: in-flight requests finish on the old ones, new requests start new ones (on
        Knative, new pods read the new value; running ones keep theirs)."""
        users = {fleet.name for fleet in self.serving() if name in fleet.spec.secrets}
        deploying = {f for f, lock in self._locks.items() if lock.locked()}  # their new replica may hold the old value
        replaced = []
        for function in sorted(users | deploying):
            async with self._lock(function):
                renewed = [fleet for fleet in self.serving(function) if name in fleet.spec.secrets and self.backend.renew(fleet)]
                if renewed:
                    replaced.append(function)
        return replaced

    def fleet(self, function: str) -> Serving:
        fleet = self.fleets.get(function)
        if fleet is None:
            raise NotFound(f"function {function!r} not found; `lepton ls` lists the deployed ones")
        return fleet

    async def describe(self, function: str, base_url: str) -> dict[str, Any]:
        fleet = self.fleet(function)
        spec = fleet.spec
        return {
            "name": function,
            "url": f"{base_url}/fn/{function}",
            "public": spec.public,
            "kind": spec.handler.kind if spec.handler else None,
            "backend": self.backend.name,
            "memory": spec.memory,
            "gpu": spec.gpu,
            **await self.backend.status(fleet),
            "traffic": await self._shares(function),
            "triggers": [t.model_dump(mode="json") for t in spec.triggers],
            "scale": {
                "min": spec.min_scale,
                "max": spec.max_scale,
                "target": spec.autoscale_target,
                "concurrency": spec.concurrency,
                "scale_down_after": spec.scale_down_after,
                "timeout": spec.timeout,
            },
        }

    async def _shares(self, function: str) -> list[dict[str, Any]]:
        """Each revision that takes traffic or has a tag: its share, tags and replicas."""
        traffic = self.traffic_of(function)
        routes = self.splits.get(function)
        out = []
        for rev_id in traffic.revisions:
            entry: dict[str, Any] = {"revision": rev_id, "percent": traffic.split.get(rev_id, 0), "tags": traffic.tags_of(rev_id)}
            fleet = routes.fleets.get(rev_id) if routes is not None else None
            if routes is not None and fleet is not None and fleet is not routes.main:
                status = await self.backend.status(fleet)
                entry.update({k: status[k] for k in ("ready", "replicas", "desired", "in_flight") if k in status})
            out.append(entry)
        return out

    async def logs_of(self, function: str, query: LogQuery) -> AsyncIterator[bytes]:
        self.fleet(function)
        return await self.backend.logs(function, query)

    def may_read_artifact(self, revision_id: str, digest: str) -> bool:
        """A revision's token reads the artifacts of its own function's revisions (a pod of
        an older revision may start while a newer one's token is in the Secret)."""
        revision = self.catalog.revision(revision_id)
        return revision is not None and any(r.digest == digest for r in self.catalog.revisions(revision.function))
