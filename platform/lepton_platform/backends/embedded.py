"""The embedded backend: each function's replicas are worker processes on this machine,
forked from a template process, scaled by the function's `Fleet`; replica logs are files
under `$LEPTON_HOME/logs`; triggers are delivered by the platform's own broker."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lepton.spec import FunctionSpec
from lepton_platform.catalog import Revision
from lepton_platform.cgroups import CgroupLimits, delegated
from lepton_platform.config import ConfigError
from lepton_platform.cpus import CpuPlacement
from lepton_platform.errors import DeployFailed, NotFound
from lepton_platform.fleet import Fleet
from lepton_platform.gpus import GpuPlacement
from lepton_platform.gpus import discover as discover_gpus
from lepton_platform.installs import Packages, RequirementError, missing_requirements
from lepton_platform.isolation import Isolation
from lepton_platform.logfiles import LogQuery, LogReader
from lepton_platform.metrics import replica_series
from lepton_platform.replicas import READY, Replica, ReplicaFactory, ReplicaFailed, replica_environment
from lepton_platform.starts import DEPLOY, StartSlots
from lepton_platform.template import TemplateProcess, TemplateUnavailable
from lepton_platform.traffic import Routes, Traffic
from lepton_platform.vault import SecretError
from lepton_platform.watchdog import MemoryWatchdog, machine_memory, memory_bytes

if TYPE_CHECKING:
    from lepton_platform.service import Platform

logger = logging.getLogger("lepton.platform")
READY_TIMEOUT = 300.0
FOLLOW_POLL = 0.2


def memory_limits(mode: str) -> CgroupLimits | None:
    """cgroup v2 where the platform's cgroup was delegated to it; None: the watchdog holds them."""
    base = None if mode == "watchdog" else delegated(marked=mode == "auto")
    if mode == "cgroup" and base is None:
        raise ConfigError(
            "configuration memory_limits: cgroup, but this platform's cgroup v2 directory is not writable "
            "or has no memory controller (run it with systemd's Delegate=yes); use auto or watchdog"
        )
    if base is not None:
        logger.info("memory limits: cgroup v2 under %s", base)
    return CgroupLimits(base) if base is not None else None


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, platform: Platform, *, fork: bool) -> None:
        self.platform = platform
        self.logs_dir = platform.logs
        self.packages = Packages(platform.home / "packages")
        self._package_dirs: dict[str, Path | None] = {}  # by revision id, for replica starts
        config = platform.config
        self.sandbox = Isolation.configure(config.sandbox, config.sandbox_user, [platform.home, platform.run_dir])
        self.template = TemplateProcess(self.logs_dir / "template.log", replica_environment(), self._on_exit) if fork else None
        self.gpus = GpuPlacement(discover_gpus(config.gpus))
        self.cgroups = memory_limits(config.memory_limits)
        self.factory = ReplicaFactory(
            self.template,
            platform.run_dir,
            self.logs_dir,
            platform.unpacked,
            self.sandbox,
            self._replica_env,
            CpuPlacement() if config.cpu_affinity else None,
            self.gpus,
            self.cgroups,
            lambda replica: self._killed_for_memory(replica, 0),
            StartSlots(config.limits.max_starting),
            config.logs,
        )
        self.memory_kills: Counter[str] = Counter()
        self.watchdog = MemoryWatchdog(lambda: self.factory.by_pid.values(), self._killed_for_memory)
        self._template_task: asyncio.Task[None] | None = None

    def _killed_for_memory(self, replica: Replica, used: int) -> None:
        """Counted for `lepton info`, whichever of the watchdog or the kernel stopped it."""
        self.memory_kills[replica.revision.function] += 1

    def _on_exit(self, pid: int, status: int) -> None:
        self.factory.on_exit(pid, status)

    def _replica_env(self, revision: Revision) -> dict[str, str]:
        """Replicas reach the platform with a token scoped to their revision's buckets, find
        the packages installed for it (installs.py) in LEPTON_PACKAGES, and export spans where
        the platform does."""
        env = {
            "LEPTON_URL": self.platform.url,
            "LEPTON_TOKEN": self.platform.credentials.scoped_token(revision),
            **self.platform.tracing.replica_environment(),
        }
        if revision.id not in self._package_dirs:  # once per revision: the metadata lookups cost ~1 ms each
            try:
                missing = missing_requirements(revision.spec.requirements)
            except RequirementError:  # checked at deploy; the environment changed since: the replica's log will say
                missing = []
            self._package_dirs[revision.id] = self.packages.installed(missing) if missing else None
        folder = self._package_dirs[revision.id]
        if folder is not None:
            env["LEPTON_PACKAGES"] = str(folder)
        if revision.spec.secrets:  # read at each start: a replica replaced after `secret set` gets the new value
            try:
                env.update(self.platform.vault.values(revision.spec.secrets))
            except SecretError as exc:
                raise ReplicaFailed(f"replica of {revision.id} cannot start: {exc}") from None
        return env

    # -- lifecycle ---------------------------------------------------------------------------

    def _fleets(self) -> list[Fleet]:
        """What serves on this backend: the Fleets `restore` and `route` make."""
        return [fleet for fleet in self.platform.serving() if isinstance(fleet, Fleet)]

    async def start(self) -> None:
        problem = self.sandbox.problem()
        if problem:
            logger.error("%s", problem)
        elif not self.sandbox.confined:
            logger.warning(
                "SANDBOX OFF: replicas are not confined (%s); a function can read everything the "
                "platform's user can, including $LEPTON_HOME",
                self.sandbox.describe(),
            )
        if self.cgroups is None:
            self.watchdog.start()
        if self.template is not None:
            self._template_task = asyncio.create_task(self._keep_template())

    async def _keep_template(self) -> None:
        """Start the template process, and start it again if it dies."""
        assert self.template is not None
        while True:
            try:
                await self.template.start()
                process = self.template.process
                assert process is not None  # start() spawned it, or raised
                await process.wait()
                logger.warning("template process exited with %s; restarting it", process.returncode)
            except TemplateUnavailable as exc:
                logger.error("%s", exc)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        self.watchdog.stop()
        if self._template_task:
            self._template_task.cancel()
        if self.template is not None:
            await self.template.stop()

    def health(self) -> dict[str, Any]:
        starts = self.factory.starts
        return {
            "template_process": bool(self.template and self.template.available),
            "sandbox": self.sandbox.describe(),
            "replicas": {
                "running": len(self.factory.by_pid),
                "starting": starts.starting,
                "starting_peak": starts.peak,
                "max_starting": starts.limit,
            },
            "awake": sum(1 for fleet in self._fleets() if fleet.awake),
            "memory_limits": f"cgroup v2 ({self.cgroups.base})" if self.cgroups else "watchdog",
            "gpus": self.gpus.gpus,
            "template_cuda_initialized": bool(self.template and self.template.cuda_initialized),
        }

    # -- deploys -----------------------------------------------------------------------------

    def check(self, spec: FunctionSpec, digest: str, image: str) -> list[str]:
        """What must be installed for `spec`; refuses what cannot be (or, in `check` mode, is missing)."""
        if image:
            raise DeployFailed(
                f"function {spec.name!r}: an image ({image}) applies to the knative backend only; "
                "the embedded platform runs functions in its own environment"
            )
        if problem := self.sandbox.problem():
            raise DeployFailed(f"function {spec.name!r}: {problem}")
        if spec.gpu > len(self.gpus.gpus):
            raise DeployFailed(
                f"function {spec.name!r} asks for gpu={spec.gpu}, but this machine has {len(self.gpus.gpus)} GPU(s) "
                "for functions (NVML, or `gpus:` / LEPTON_GPUS)"
            )
        if memory_bytes(spec.memory) > machine_memory():
            raise DeployFailed(
                f"function {spec.name!r} asks for memory={spec.memory}, more than this machine's {machine_memory() / 2**30:.1f} GiB"
            )
        try:
            missing = missing_requirements(spec.requirements)
        except RequirementError as exc:
            raise DeployFailed(f"function {spec.name!r}: {exc}") from None
        if missing and self.platform.config.requirements == "check":
            raise DeployFailed(
                f"function {spec.name!r}: requirement {missing[0]!r} is not installed on the platform "
                "(`requirements: install` in config.yaml installs what is missing, per revision)"
            )
        return missing

    async def install(self, revision: Revision, missing: list[str]) -> None:
        try:
            await self.packages.install(missing)
        except RequirementError as exc:
            raise DeployFailed(f"function {revision.function!r}: {exc}; the previous revision keeps serving") from None

    async def restore(self, revision: Revision) -> Fleet:
        fleet = self._fleet(revision)
        await self.platform.broker.set_function_triggers(revision.spec)
        return fleet

    def _fleet(self, revision: Revision) -> Fleet:
        fleet = Fleet(revision, self.factory, metrics=self.platform.metrics, queue_limit=self.platform.config.limits.max_queued_requests)
        fleet.start()
        return fleet

    async def prove(self, revision: Revision, current: Revision | None, *, rollback: bool = False) -> Replica | None:
        """One replica of the new revision, ready; a rollback needs none (its fleet starts
        replicas as traffic comes)."""
        if rollback:
            return None
        async with self.factory.starts.slot(DEPLOY):  # a few at a time, however many are deployed
            replica = await self.factory.start(revision)
            try:
                await replica.wait_ready(READY_TIMEOUT)
            except ReplicaFailed as exc:
                await replica.stop(grace=0)
                raise DeployFailed(f"revision {revision.id} failed to start; the previous revision keeps serving. {exc}") from None
        self.platform.metrics.replica_ready(revision.function, replica)
        return replica

    async def route(self, revision: Revision, proof: Replica | None, serving: Any) -> Fleet:
        fleet = serving if isinstance(serving, Fleet) else self._fleet(revision)
        if fleet.revision.id != revision.id or proof is not None:
            fleet.switch(revision, proof)
        await self.platform.broker.set_function_triggers(revision.spec)
        return fleet

    async def split(
        self, traffic: Traffic, revisions: dict[str, Revision], current: Routes, proof: tuple[str, Replica | None] | None = None
    ) -> Routes:
        """A fleet per revision, each scaling on its own share: the ones serving now are kept
        (with their replicas), new ones start at zero or with the deploy's proof; fleets
        that no longer take traffic drain and stop."""
        fleets = {}
        for rev_id in traffic.revisions:
            fleet = current.fleets.get(rev_id)
            if fleet is None:
                fleet = self._fleet(revisions[rev_id])
            if proof is not None and proof[0] == rev_id:
                fleet.switch(revisions[rev_id], proof[1])
            fleets[rev_id] = fleet
        for rev_id, fleet in current.fleets.items():
            if rev_id not in fleets:
                fleet.drain()
        if proof is not None and proof[0] not in fleets and proof[1] is not None:
            await proof[1].stop(grace=0)  # proven, but it takes no traffic and has no tag
        await self.platform.broker.set_function_triggers(revisions[traffic.main].spec)
        return Routes(traffic, fleets)

    async def remove(self, function: str, serving: Any) -> None:
        await serving.close()

    # -- secrets: replicas read them from the platform's vault when they start ----------------

    async def put_secret(self, name: str, value: str) -> None:
        pass

    async def delete_secret(self, name: str) -> None:
        pass

    def renew(self, serving: Any) -> bool:
        serving.recycle()
        return True

    async def replica_metrics(self) -> bytes:
        ready = [r for fleet in self._fleets() for r in fleet.replicas if isinstance(r, Replica) and r.state == READY]
        return await replica_series(ready)

    async def status(self, serving: Any) -> dict[str, Any]:
        return {**serving.status(), "sandbox": self.sandbox.describe(), "memory_kills": self.memory_kills[serving.name]}

    # -- logs --------------------------------------------------------------------------------

    async def logs(self, function: str, query: LogQuery) -> AsyncIterator[bytes]:
        """Its replicas' files, merged by time (logfiles.py); new lines every FOLLOW_POLL
        seconds while `query.follow`. A `replica` that matches no replica's file is NotFound."""
        reader = LogReader(self.logs_dir / function, query.replica, query.cutoff)
        if query.replica and not reader.replicas():
            raise NotFound(
                f"function {function!r} has no replica {query.replica!r} (nor one whose id starts so); "
                f"each line of `lepton logs {function}` names its replica"
            )
        return self._follow(function, reader, query)

    async def _follow(self, function: str, reader: LogReader, query: LogQuery) -> AsyncIterator[bytes]:
        lines = await asyncio.to_thread(reader.tail, query.tail)
        if lines:
            yield b"".join(lines)
        while query.follow and function in self.platform.fleets:
            await asyncio.sleep(FOLLOW_POLL)
            lines = await asyncio.to_thread(reader.poll)
            if lines:
                yield b"".join(lines)
