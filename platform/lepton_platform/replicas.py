"""Replicas: worker processes that run the function runtime on a Unix socket.

A replica is forked from the template process (`template.py`) when it is up, else started
as a fresh process (and the log says so). `Replica` tracks one process: its state, its
in-flight requests, its pooled keep-alive connections, and how it ended.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lepton.handlers import ASGI
from lepton.runtime import logstamp
from lepton.runtime.handoff import SUFFIX as HANDOFF_SUFFIX
from lepton_platform import isolation
from lepton_platform.catalog import Revision
from lepton_platform.cgroups import CgroupLimits
from lepton_platform.cgroups import join as join_cgroup
from lepton_platform.config import LogsConfig
from lepton_platform.cpus import CpuPlacement
from lepton_platform.gpus import GpuPlacement
from lepton_platform.handoff import HandoffChannel
from lepton_platform.isolation import Isolation
from lepton_platform.logfiles import drop_empty, last_messages
from lepton_platform.starts import StartSlots
from lepton_platform.template import TemplateProcess, TemplateUnavailable, die_with_parent
from lepton_platform.upstream import ReplicaConnector, ReplicaPool, socket_address
from lepton_platform.watchdog import memory_bytes, private_bytes

logger = logging.getLogger("lepton.platform.replicas")

STARTING, READY, DRAINING, DEAD = "starting", "ready", "draining", "dead"
SETUP_FAILED = 3
TEMPLATE_WAIT = 15.0


class NoCapacity(Exception):
    """Not enough free GPUs for another replica now; the fleet tries again on its next tick."""


class ReplicaFailed(Exception):
    """The replica exited or never became ready; the message has its log's last lines."""


@dataclass(eq=False)
class Replica:
    id: str
    revision: Revision
    uds: str
    log: Path
    scratch: Path | None = None
    pid: int | None = None
    state: str = STARTING
    in_flight: int = 0
    forked: bool = False
    started_at: float = field(default_factory=time.perf_counter)
    ready_after: float | None = None
    exit_status: int | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    cpus: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    ended_because: str | None = None  # why the platform stopped it, for the callers it fails
    cgroup: Path | None = None  # its own cgroup, where memory= is held by the kernel (cgroups.py)
    session: aiohttp.ClientSession = field(init=False)
    pool: ReplicaPool = field(init=False)
    handoff: HandoffChannel | None = None  # where an ASGI function's WebSockets are handed over
    reply_headers: tuple[bytes, bytes] = field(init=False)  # what connection.py adds to a reply: warm, cold

    def __post_init__(self) -> None:
        self.idle.set()
        head = b"x-lepton-revision: %s\r\nx-lepton-cold-start: " % self.revision.id.encode()
        self.reply_headers = (head + b"0\r\n", head + b"1\r\n")
        # Invocations on the platform's port come through `pool` (connection.py); the ASGI
        # request path (broker deliveries, HEAD, HTTP/1.0) and readiness checks use aiohttp.
        self.pool = ReplicaPool(socket_address(self.uds))
        self.session = aiohttp.ClientSession(
            "http://replica",
            connector=ReplicaConnector(path=socket_address(self.uds), limit=0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        if self.revision.spec.handler is not None and self.revision.spec.handler.kind == ASGI:
            self.handoff = HandoffChannel(socket_address(self.uds + HANDOFF_SUFFIX))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "revision": self.revision.id,
            "pid": self.pid,
            "state": self.state,
            "in_flight": self.in_flight,
            "forked": self.forked,
            "socket": self.uds,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "memory_bytes": private_bytes(self.pid) if self.pid and not self.exited.is_set() else None,
            "ready_ms": round(self.ready_after * 1000, 1) if self.ready_after is not None else None,
        }

    def acquire(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    def why_ended(self) -> str | None:
        """Why the platform or the kernel stopped it, if they did (for its callers)."""
        if self.ended_because is None and self.cgroup is not None and CgroupLimits.oom_kills(self.cgroup):
            self.ended_because = f"it went over its memory limit of {self.revision.spec.memory} and the kernel stopped it"
        return self.ended_because

    def mark_exited(self, status: int) -> None:
        self.exit_status = status
        self.state = DEAD
        self.exited.set()
        self.idle.set()

    def log_tail(self, lines: int = 15) -> str:
        """Its last lines' text, without their stamps: for the errors its callers see."""
        return "\n".join(last_messages(self.log, lines))

    async def wait_ready(self, timeout: float) -> None:
        """Until /_lepton/readyz (the runtime's own route, whatever paths the function serves)
        answers 200; fail fast if the process exits. Until the replica listens, a bare connect
        every 2 ms (a few microseconds each); then one request the runtime holds until setup()
        is over (`?wait=`), so a deploy of many functions does not spend the cores it shares
        with the replicas on polling them."""
        deadline = time.perf_counter() + timeout
        address = socket_address(self.uds)
        while not self.exited.is_set() and not _listening(address):
            if time.perf_counter() > deadline:
                raise ReplicaFailed(f"replica {self.id} not ready after {timeout:g}s\n{self.log_tail()}")
            await asyncio.sleep(0.002)
        while True:
            if self.exited.is_set():
                raise ReplicaFailed(self._failure_message())
            if self.state == DRAINING:
                raise ReplicaFailed(f"replica {self.id} was stopped before it was ready")
            left = deadline - time.perf_counter()
            if left <= 0:
                raise ReplicaFailed(f"replica {self.id} not ready after {timeout:g}s\n{self.log_tail()}")
            try:
                async with self.session.get("/_lepton/readyz", params={"wait": f"{min(left, 5.0):.3f}"}) as response:
                    if response.status == 200:
                        self.ready_after = time.perf_counter() - self.started_at
                        self.state = READY
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.002)  # setup() failed (the process is ending) or the wait ran out

    def _failure_message(self) -> str:
        reason = {SETUP_FAILED: "setup() failed", 2: "could not import the function"}.get(
            self.exit_status or 0, f"exited with status {self.exit_status}"
        )
        return f"replica {self.id} {reason}:\n{self.log_tail()}"

    def signal(self, sig: int) -> None:
        if self.pid is not None and not self.exited.is_set():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    async def stop(self, grace: float = 10) -> None:
        """Drain (no new requests; finish in-flight ones), then TERM, then KILL."""
        if self.state != DEAD:
            self.state = DRAINING
        try:
            if not self.idle.is_set():  # (wait_for with 0 s times out even on a set event)
                await asyncio.wait_for(self.idle.wait(), grace)
        except TimeoutError:
            logger.warning("replica %s still has %d requests after %gs; stopping it anyway", self.id, self.in_flight, grace)
        else:
            # Our idle keep-alive connections go first: uvicorn otherwise waits for them for
            # up to 100 ms before it exits (a thousand deploys' proofs lingered that long).
            await self.close_clients()
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.exited.wait(), 5)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.exited.wait()
        await self.close_clients()

    async def close_clients(self) -> None:
        if self.handoff is not None:
            self.handoff.close()
        self.pool.close()
        await self.session.close()


def _listening(address: str) -> bool:
    """Whether something accepts connections on the Unix socket `address` (it never blocks:
    a Unix connect succeeds or fails at once)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(address) == 0


def replica_environment() -> dict[str, str]:
    """The platform's environment minus its own secrets and whereabouts: replicas never see the
    admin token, the platform's storage credentials or $LEPTON_HOME, only the scoped token
    their revision gets."""
    keep = {"LEPTON_PRELOAD", "LEPTON_LOG_LEVEL"}
    return {k: v for k, v in os.environ.items() if not k.startswith(("LEPTON_", "AWS_")) or k in keep}


def become_replica(cpus: list[int], plan: dict[str, Any], cgroup: str | None) -> None:
    """In a fresh replica process before it runs Python: die with the platform, in its
    cgroup, on its cores, confined as isolation.py says."""
    parent = os.getppid()
    if cgroup:
        join_cgroup(cgroup)
    if cpus:
        os.sched_setaffinity(0, cpus)
    os.chdir(isolation.enter(plan)["app"])
    die_with_parent()  # after the switch of user, which clears it
    if os.getppid() != parent:  # the platform ended before it was set
        os._exit(1)


class ReplicaFactory:
    """Starts replicas: forked from the template process, or as a fresh process when it is not there."""

    def __init__(
        self,
        template: TemplateProcess | None,
        run_dir: Path,
        logs_dir: Path,
        unpacked: Path,
        sandbox: Isolation,
        platform_env: Callable[[Revision], dict[str, str]] = lambda revision: {},
        placement: CpuPlacement | None = None,
        gpus: GpuPlacement | None = None,
        cgroups: CgroupLimits | None = None,
        on_memory_kill: Callable[[Replica], None] = lambda replica: None,
        starts: StartSlots | None = None,
        logs: LogsConfig | None = None,
    ) -> None:
        self.template = template
        self.logs = logs or LogsConfig()
        self.starts = starts or StartSlots()
        self.cgroups = cgroups
        self.on_memory_kill = on_memory_kill
        self.gpus = gpus or GpuPlacement([])
        self.sandbox = sandbox
        self.scratch = run_dir / "scratch"
        self.scratch.mkdir(exist_ok=True)
        self.placement = placement
        self.platform_env = platform_env
        self.run_dir = run_dir
        self.logs_dir = logs_dir
        self.unpacked = unpacked
        self.by_pid: dict[int, Replica] = {}
        self._entrypoints: dict[str, str] = {}  # by artifact digest
        self._seq = itertools.count(1)

    def on_exit(self, pid: int, status: int) -> None:
        replica = self.by_pid.pop(pid, None)
        if replica is not None:
            self._give_back_cpus(replica)
            if replica.scratch is not None:
                asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, replica.scratch, True)
            if replica.cgroup is not None:
                if replica.why_ended():
                    self.on_memory_kill(replica)
                CgroupLimits.remove(replica.cgroup)
            drop_empty(logstamp.rotated_paths(replica.log, self.logs.keep))
            replica.mark_exited(status)
            if replica.state != DRAINING:
                logger.info("replica %s [%s] exited with status %s", replica.id, pid, status)

    def environment(self, revision: Revision) -> dict[str, str]:
        """What a replica gets on top of the sanitised base: the function's env, who it is, and
        how to reach the platform with its revision's scoped token."""
        return {**revision.spec.env, "LEPTON_FUNCTION": revision.function, "LEPTON_REVISION": revision.id, **self.platform_env(revision)}

    async def start(self, revision: Revision) -> Replica:
        problem = self.sandbox.problem()
        if problem:
            raise ReplicaFailed(problem)
        gpus = self.gpus.take(revision.spec.gpu)
        if gpus is None:
            raise NoCapacity(f"{revision.spec.gpu} GPU(s) for {revision.function}")
        env = {**self.environment(revision), **self.gpus.visible_devices(gpus)}
        replica_id = f"{revision.id}-{secrets.token_hex(2)}{next(self._seq)}"
        folder = self.logs_dir / revision.function
        folder.mkdir(parents=True, exist_ok=True)
        replica = Replica(replica_id, revision, f"@lepton-{secrets.token_hex(16)}", folder / f"{replica_id}.log", gpus=gpus)
        if self.placement is not None:
            replica.cpus = self.placement.take(revision.spec.cpu)
        try:
            return await self._start(replica, env)
        except BaseException:
            self._give_back_cpus(replica)
            if replica.pid is None:  # never started: nothing will report its end
                if replica.scratch is not None:
                    shutil.rmtree(replica.scratch, ignore_errors=True)
                if replica.cgroup is not None:
                    CgroupLimits.remove(replica.cgroup)
            raise

    def _give_back_cpus(self, replica: Replica) -> None:
        """Its cores and GPUs are free again."""
        if self.placement is not None:
            self.placement.give_back(replica.cpus)
        self.gpus.give_back(replica.gpus)
        replica.cpus, replica.gpus = [], []

    async def _start(self, replica: Replica, env: dict[str, str]) -> Replica:
        revision, replica_id = replica.revision, replica.id
        src = self.unpacked / revision.digest.removeprefix("sha256:") / "src"
        if revision.digest not in self._entrypoints:  # the manifest of a big file is large: read it once
            self._entrypoints[revision.digest] = json.loads((src.parent / "lepton.json").read_text())["entrypoint"]
        packages = env.pop("LEPTON_PACKAGES", None)
        replica.scratch = self.scratch / replica_id
        plan = self.sandbox.plan(src, Path(packages) if packages else None, replica.scratch, replica.gpus)
        if self.cgroups is not None:
            replica.cgroup = self.cgroups.prepare(replica_id, memory_bytes(revision.spec.memory))
        request = {
            "id": replica_id,
            "entrypoint": self._entrypoints[revision.digest],
            "isolation": plan,
            "cgroup": str(replica.cgroup) if replica.cgroup else None,
            "function": revision.function,
            "uds": replica.uds,
            "log": str(replica.log),
            "cpus": replica.cpus,
            "threads": env.get("LEPTON_THREADS") or len(replica.cpus) or "",
            "log_keep": self.logs.keep,
            "log_max_bytes": self.logs.max_bytes,
        }
        env["LEPTON_REPLICA"] = replica_id
        env["LEPTON_PLATFORM_UID"] = str(os.getuid())  # the only user its socket answers
        if self.template is not None and await self.template.wait_available(TEMPLATE_WAIT):
            try:
                replica.pid = await self.template.spawn(request, env)
                replica.forked = True
                self._watch_forked(replica.pid)
            except TemplateUnavailable:
                replica.pid = None
        if replica.pid is None:
            logger.info("forking is not possible (no template process); starting %s as a fresh process", replica_id)
            replica.pid = await self._fresh(replica, request, env)
        self.by_pid[replica.pid] = replica
        return replica

    def _watch_forked(self, pid: int) -> None:
        """Hear of a forked replica's end even if the template process that would report it
        is gone (it may be restarted while its replicas keep serving)."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.on_exit(pid, -1)
            return
        loop = asyncio.get_running_loop()

        def ended() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self.on_exit(pid, -1)  # a no-op when the template process reported it first

        loop.add_reader(fd, ended)

    async def _fresh(self, replica: Replica, request: dict[str, Any], env: dict[str, str]) -> int:
        plan = request["isolation"]
        seen = isolation.paths(plan)
        logs = logstamp.open_files(replica.log, self.logs.keep)  # opened here: the sandbox keeps the replica out of $LEPTON_HOME
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lepton.runtime",
                f"{seen['app']}/{request['entrypoint']}:{request['function']}",
                "--uds",
                replica.uds,
                stdout=logs[0],
                stderr=logs[0],
                pass_fds=logs,
                env={
                    **replica_environment(),
                    **env,
                    **isolation.environment(seen),
                    logstamp.ENV: logstamp.env_value(logs, self.logs.max_bytes),
                },
                preexec_fn=functools.partial(become_replica, replica.cpus, plan, request["cgroup"]),
                start_new_session=True,
            )
        finally:
            for fd in logs:
                os.close(fd)

        async def watch() -> None:
            status = await proc.wait()
            self.on_exit(proc.pid, status)

        asyncio.get_running_loop().create_task(watch())
        return proc.pid
