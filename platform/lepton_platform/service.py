"""The platform: state, artifacts, fleets and the template process, and the operations the
API exposes (deploy, rollback, remove). One `Platform` per `lepton up`.
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
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from lepton.errors import ArtifactError, LeptonError
from lepton.packaging import unpack
from lepton.spec import FunctionSpec
from lepton_platform.auth import load_or_create_token
from lepton_platform.broker import Broker
from lepton_platform.config import load_config
from lepton_platform.cpus import CpuPlacement
from lepton_platform.credentials import Credentials
from lepton_platform.fleet import Fleet
from lepton_platform.knative_backend import KnativeBackend, KnativeFleet
from lepton_platform.metrics import PlatformMetrics
from lepton_platform.packages import Packages, RequirementError, missing_requirements
from lepton_platform.replicas import Replica, ReplicaFactory, ReplicaFailed
from lepton_platform.storage import open_store
from lepton_platform.store import Revision, Store, content_id
from lepton_platform.zygote import Zygote, ZygoteUnavailable

logger = logging.getLogger("lepton.platform")
READY_TIMEOUT = 300.0


class NotFound(LeptonError):
    pass


class DeployFailed(LeptonError):
    """The new revision did not become ready; the one serving before keeps serving."""


class Platform:
    def __init__(self, home: Path, *, fork: bool = True, url: str = "http://127.0.0.1:8765") -> None:
        self.home = home
        self.url = url
        home.mkdir(parents=True, exist_ok=True)
        self.config = load_config(home)
        self.token = load_or_create_token(home)
        self.credentials = Credentials(self.token)
        self.store = Store(home / "state.db")
        self.storage = open_store(self.config.storage, home / "buckets")
        self.artifacts = home / "artifacts"
        self.unpacked = home / "unpacked"
        self.logs = home / "logs"
        self.packages = Packages(home / "packages")
        self._package_dirs: dict[str, Path | None] = {}  # by revision id, for replica starts
        for folder in (self.artifacts, self.unpacked, self.logs):
            folder.mkdir(exist_ok=True)
        # Unix socket paths are limited to ~107 bytes: keep them short, outside $LEPTON_HOME.
        self.run_dir = Path(tempfile.mkdtemp(prefix="lepton-"))
        self.metrics = PlatformMetrics()
        self.fleets: dict[str, Fleet | KnativeFleet] = {}
        self.knative = KnativeBackend(self.config) if self.config.backend == "knative" else None
        forward = self.config.knative.broker_url if self.knative else None
        self.broker = Broker(home / "events.db", self.token, self.metrics, self.storage.outbox, self._spec_of, forward_to=forward)
        local = self.knative is None
        self.zygote = Zygote(self.run_dir, self.logs / "zygote.log", self._on_exit) if fork and local else None
        self.factory = ReplicaFactory(self.zygote, self.run_dir, self.logs, self.unpacked, self._replica_env,
                                      CpuPlacement() if self.config.cpu_affinity else None)
        self._locks: dict[str, asyncio.Lock] = {}
        self._zygote_task: asyncio.Task[None] | None = None

    def _replica_env(self, revision: Revision) -> dict[str, str]:
        """Replicas reach the platform with a token scoped to their revision's buckets, and
        find the packages installed for it (packages.py) in LEPTON_PACKAGES."""
        env = {"LEPTON_URL": self.url, "LEPTON_TOKEN": self.credentials.scoped_token(revision.id)}
        if revision.id not in self._package_dirs:  # once per revision: the metadata lookups cost ~1 ms each
            try:
                missing = missing_requirements(revision.spec.requirements)
            except RequirementError:  # checked at deploy; the environment changed since: the replica's log will say
                missing = []
            self._package_dirs[revision.id] = self.packages.installed(missing) if missing else None
        folder = self._package_dirs[revision.id]
        if folder is not None:
            env["LEPTON_PACKAGES"] = str(folder)
        return env

    def _check_requirements(self, spec: FunctionSpec) -> list[str]:
        """What must be installed for `spec`; refuses what cannot be (or, in `check` mode, is missing)."""
        try:
            missing = missing_requirements(spec.requirements)
        except RequirementError as exc:
            raise DeployFailed(f"function {spec.name!r}: {exc}") from None
        if missing and self.config.requirements == "check":
            raise DeployFailed(f"function {spec.name!r}: requirement {missing[0]!r} is not installed on the platform "
                               "(`requirements: install` in config.yaml installs what is missing, per revision)")
        return missing

    def _spec_of(self, function: str) -> FunctionSpec | None:
        fleet = self.fleets.get(function)
        return fleet.spec if fleet else None

    def _on_exit(self, pid: int, status: int) -> None:
        self.factory.on_exit(pid, status)

    @asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        if self.zygote is not None:
            self._zygote_task = asyncio.create_task(self._keep_zygote())
        for name, revision in self.store.routed():
            try:
                self._unpacked(revision.digest)
            except ArtifactError as exc:
                logger.error("function %s cannot be restored: %s", name, exc)
                continue
            if self.knative:
                url = await asyncio.to_thread(self.knative.url, name)
                if url is None:
                    logger.error("function %s: its Knative Service is not ready; calls fail until it is redeployed", name)
                self.fleets[name] = KnativeFleet(revision, url or "http://unavailable.invalid")
                continue
            self._add_fleet(revision)
            await self.broker.set_function_triggers(revision.spec)
        await self.broker.start()
        # Everything imported and built so far lives as long as the process: keep it out of
        # the cyclic garbage collector's scans, which otherwise show up on the request path.
        gc.freeze()
        logger.info("platform ready: %d functions restored from %s", len(self.fleets), self.home)

    async def _keep_zygote(self) -> None:
        """Start the template process, and start it again if it dies."""
        assert self.zygote is not None
        while True:
            try:
                await self.zygote.start()
                await self.zygote.process.wait()
                logger.warning("template process exited with %s; restarting it", self.zygote.process.returncode)
            except ZygoteUnavailable as exc:
                logger.error("%s", exc)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._zygote_task:
            self._zygote_task.cancel()
        await self.broker.stop()
        await asyncio.gather(*(fleet.close() for fleet in self.fleets.values()), return_exceptions=True)
        if self.zygote is not None:
            await self.zygote.stop()
        self.store.close()
        self.storage.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def _add_fleet(self, revision: Revision) -> Fleet:
        fleet = Fleet(revision, self.factory, metrics=self.metrics)
        self.fleets[revision.function] = fleet
        fleet.start()
        return fleet

    # -- artifacts -------------------------------------------------------------------------

    def save_artifact(self, digest: str, data: bytes) -> dict[str, Any]:
        """Store uploaded bytes under their digest after checking it; returns the manifest."""
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ArtifactError(f"upload does not match its digest: expected {digest}, got {actual}")
        path = self.artifacts / f"{actual.removeprefix('sha256:')}.tar.gz"
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return self._unpacked(actual)[1]

    def _unpacked(self, digest: str) -> tuple[Path, dict[str, Any]]:
        path = self.artifacts / f"{digest.removeprefix('sha256:')}.tar.gz"
        if not path.exists():
            raise ArtifactError(f"artifact {digest} is not on the platform; upload it first")
        return unpack(path, self.unpacked, digest)

    # -- operations ------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def prepare(self, function: str, digest: str) -> tuple[FunctionSpec, Revision | None]:
        """Validate a deploy request; returns the spec and the routed revision if unchanged."""
        _, manifest = self._unpacked(digest)
        specs = {fn["name"]: fn for fn in manifest["functions"]}
        if function not in specs:
            raise NotFound(f"artifact {digest[:19]}... has no function {function!r}; it has {', '.join(sorted(specs))}")
        spec = FunctionSpec.model_validate(specs[function])
        self._check_requirements(spec)
        fleet = self.fleets.get(function)
        if fleet is not None and fleet.revision.content == content_id(digest, spec):
            return spec, fleet.revision
        return spec, None

    async def deploy(self, spec: FunctionSpec, digest: str) -> Revision:
        """Prove the new revision starts and passes setup, then move all traffic to it."""
        async with self._lock(spec.name):
            revision = self.store.find_revision(spec.name, content_id(digest, spec))
            if revision is None or revision.status == "failed":
                revision = self.store.create_revision(spec, digest)
            await self._create_buckets(spec)
            started = time.perf_counter()
            missing = [] if self.knative else self._check_requirements(spec)
            if missing:
                try:
                    await self.packages.install(missing)
                except RequirementError as exc:
                    self.store.set_revision_status(revision.id, "failed", str(exc))
                    raise DeployFailed(f"function {spec.name!r}: {exc}; the previous revision keeps serving") from None
            proven = await self._prove(revision)
            self.store.set_revision_status(revision.id, "ready")
            self.store.route(spec.name, revision.id)
            revision = self.store.revision(revision.id)
            await self._switch(revision, proven)
            logger.info("%s now serves %s (ready in %.0f ms)", spec.name, revision.id, (time.perf_counter() - started) * 1000)
            return revision

    async def _prove(self, revision: Revision) -> Replica | str:
        """Start the revision and wait until it is ready: one local replica, or the Knative
        Service (returns its URL). On failure the previous revision keeps serving."""
        if self.knative:
            from lepton_knative.cluster import ClusterError
            from lepton_knative.validation import ManifestError

            data = (self.artifacts / f"{revision.digest.removeprefix('sha256:')}.tar.gz").read_bytes()
            try:
                return await asyncio.to_thread(self.knative.deploy, revision, data)
            except (ClusterError, ManifestError, RuntimeError) as exc:
                self.store.set_revision_status(revision.id, "failed", str(exc))
                raise DeployFailed(f"revision {revision.id} failed on Knative; the previous revision keeps serving. {exc}") from None
        replica = await self.factory.start(revision)
        try:
            await replica.wait_ready(READY_TIMEOUT)
        except ReplicaFailed as exc:
            await replica.stop(grace=0)
            self.store.set_revision_status(revision.id, "failed", str(exc))
            raise DeployFailed(f"revision {revision.id} failed to start; the previous revision keeps serving. {exc}") from None
        self.metrics.replica_ready(revision.function, replica)
        return replica

    async def _switch(self, revision: Revision, proven: Replica | str | None = None) -> None:
        """Route the function to `revision` (with the replica or URL that proved it)."""
        fleet = self.fleets.get(revision.function)
        if isinstance(proven, str):
            if fleet is None:
                self.fleets[revision.function] = KnativeFleet(revision, proven)
            else:
                fleet.switch(revision, proven)
            return
        (fleet or self._add_fleet(revision)).switch(revision, proven)
        await self.broker.set_function_triggers(revision.spec)

    async def _create_buckets(self, spec: FunctionSpec) -> None:
        """The buckets a function declares or is triggered by exist before it runs."""
        wanted = {*spec.buckets, *(t.bucket for t in spec.triggers if t.kind == "bucket")}
        for bucket in sorted(wanted):
            if await asyncio.to_thread(self.storage.create_bucket, bucket):
                logger.info("created bucket %s for %s", bucket, spec.name)

    async def rollback(self, function: str, rev_id: str | None) -> Revision:
        fleet = self.fleet(function)
        async with self._lock(function):
            if rev_id is None:
                earlier = [r for r in self.store.revisions(function) if r.status == "ready" and r.number < fleet.revision.number]
                if not earlier:
                    raise NotFound(f"function {function!r} has no ready revision before {fleet.revision.id}")
                revision = earlier[-1]
            else:
                revision = self.store.revision(rev_id)
                if revision is None or revision.function != function:
                    raise NotFound(f"function {function!r} has no revision {rev_id!r}; see `lepton revisions {function}`")
                if revision.status != "ready":
                    raise DeployFailed(f"revision {rev_id} is {revision.status}; only ready revisions can take traffic")
            self._unpacked(revision.digest)
            proven = await self._prove(revision) if self.knative else None
            self.store.route(function, revision.id)
            await self._switch(revision, proven)
            return revision

    async def remove(self, function: str) -> None:
        fleet = self.fleet(function)
        async with self._lock(function):
            del self.fleets[function]
            await self.broker.remove_function(function)
            if self.knative:
                await asyncio.to_thread(self.knative.remove, function)
            await fleet.close()
            self.store.delete_function(function)
            self.metrics.forget(function)
            shutil.rmtree(self.logs / function, ignore_errors=True)

    def fleet(self, function: str) -> Fleet | KnativeFleet:
        fleet = self.fleets.get(function)
        if fleet is None:
            raise NotFound(f"function {function!r} not found; `lepton ls` lists the deployed ones")
        return fleet

    def describe(self, function: str, base_url: str) -> dict[str, Any]:
        fleet = self.fleet(function)
        spec = fleet.spec
        return {
            "name": function, "url": f"{base_url}/fn/{function}", "public": spec.public, "kind": spec.handler.kind if spec.handler else None,
            **fleet.status(),
            "triggers": [t.model_dump(mode="json") for t in spec.triggers],
            "scale": {"min": spec.min_scale, "max": spec.max_scale, "target": spec.autoscale_target,
                      "concurrency": spec.concurrency, "scale_down_after": spec.scale_down_after, "timeout": spec.timeout},
        }

    def log_files(self, function: str) -> list[Path]:
        self.fleet(function)
        folder = self.logs / function
        return sorted(folder.glob("*.log"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
