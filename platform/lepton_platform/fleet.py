"""A function's live replicas and the reconcile loop that keeps their count where the
autoscaler wants it. The activator acquires replicas here; deploys switch revisions here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from lepton_platform.autoscaler import ConcurrencyWindow, decide, stable_window
from lepton_platform.replicas import DEAD, DRAINING, READY, STARTING, NoCapacity, Replica, ReplicaFactory, ReplicaFailed
from lepton_platform.store import Revision

logger = logging.getLogger("lepton.platform.fleet")
TICK = 0.1
READY_TIMEOUT = 300.0
MAX_RESTART_DELAY = 30.0


class StartFailed(Exception):
    """No replica could be started; the message says why (with the log's last lines)."""


class Fleet:
    def __init__(self, revision: Revision, factory: ReplicaFactory, *, metrics: Any = None) -> None:
        self.revision = revision
        self.factory = factory
        self.metrics = metrics
        self.replicas: list[Replica] = []
        self.desired = 0
        self.panic = False
        self.failure: str | None = None
        self._failures_in_a_row = 0
        self._next_start = 0.0
        self._demand = 0
        self._waiting = 0
        self._area = 0.0
        self._last_change = self._last_scale = time.monotonic()
        self._last_request = time.monotonic()
        self._window = ConcurrencyWindow(TICK, stable_window(revision.spec))
        self._changed = asyncio.Condition()
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return self.revision.function

    @property
    def spec(self):  # noqa: ANN201 - FunctionSpec
        return self.revision.spec

    def start(self) -> None:
        self._task = asyncio.create_task(self._reconcile_loop(), name=f"fleet-{self.name}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(r.stop(grace=5) for r in self.replicas), return_exceptions=True)
        self.replicas.clear()

    # -- demand ----------------------------------------------------------------------------

    def _integrate(self, now: float) -> None:
        """Add in-flight x time since the last change, for the time-weighted average."""
        self._area += self._demand * (now - self._last_change)
        self._last_change = now

    def _account(self, delta: int) -> None:
        now = time.monotonic()
        self._integrate(now)
        self._demand += delta
        self._last_request = now

    def try_acquire(self) -> Replica | None:
        """The common case, without waiting: a ready replica with a free slot, least loaded first."""
        replica = self._pick()
        if replica is not None:
            self._account(+1)
            replica.acquire()
        return replica

    async def acquire(self, timeout: float) -> tuple[Replica, bool]:
        """A replica with a free slot and whether the request waited for a cold start."""
        replica = self.try_acquire()
        if replica is not None:  # no lock, no timer
            return replica, False
        self._account(+1)
        cold = False
        self._waiting += 1
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    while True:
                        replica = self._pick()
                        if replica is not None:
                            replica.acquire()
                            return replica, cold
                        if not any(r.state == READY for r in self.replicas):
                            cold = True
                            if self.failure and not any(r.state == STARTING for r in self.replicas):
                                raise StartFailed(self.failure)
                        self._kick.set()
                        await self._changed.wait()
        except BaseException:
            self._account(-1)
            raise
        finally:
            self._waiting -= 1

    def release(self, replica: Replica) -> None:
        replica.release()
        self._account(-1)
        if self._waiting:
            self._spawn(self._notify())

    def _pick(self) -> Replica | None:
        limit = self.spec.concurrency
        best = None
        for replica in self.replicas:
            if replica.state != READY or (limit and replica.in_flight >= limit):
                continue
            if best is None or replica.in_flight < best.in_flight:
                best = replica
        return best

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- reconcile -------------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), TICK)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                self._scale()
            except Exception:
                logger.exception("reconcile of %s failed; retrying", self.name)

    def _scale(self) -> None:
        now = time.monotonic()
        self._integrate(now)
        span, self._last_scale = now - self._last_scale, now
        # Time-weighted average in-flight since the last tick, so short requests count too.
        self._window.add(self._area / span if span > 1e-3 else self._demand)
        self._area = 0.0
        stable_avg, panic_avg = self._window.averages()
        ready = sum(1 for r in self.replicas if r.state == READY)
        decision = decide(
            self.spec, stable_avg=stable_avg, panic_avg=panic_avg, ready=ready,
            idle_for=0.0 if self._demand else now - self._last_request, in_flight=self._demand,
            was_panicking=self.panic,
        )
        self.desired, self.panic = decision.desired, decision.panic
        alive = [r for r in self.replicas if r.state in (STARTING, READY)]
        if len(alive) < self.desired and now >= self._next_start:
            for _ in range(self.desired - len(alive)):
                if not self.factory.gpus.fits(self.spec.gpu):
                    break  # requests wait in the activator until a GPU is free
                self._spawn(self._launch())
        elif len(alive) > self.desired and not any(r.state == STARTING for r in alive):
            extra = sorted((r for r in alive if r.state == READY), key=lambda r: r.in_flight)[: len(alive) - self.desired]
            for replica in extra:
                self._retire(replica)
        if self.metrics:
            self.metrics.observe_fleet(self)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _launch(self, replica: Replica | None = None) -> Replica | None:
        """Start one replica of the routed revision and watch it until it dies."""
        revision = self.revision
        try:
            if replica is None:
                placeholder = _Placeholder(revision)
                self.replicas.append(placeholder)  # counts as starting while we spawn
                try:
                    replica = await self.factory.start(revision)
                except NoCapacity:
                    return None  # another fleet took the GPUs first; the next tick looks again
                finally:
                    self.replicas.remove(placeholder)
                self.replicas.append(replica)
                await replica.wait_ready(READY_TIMEOUT)
            self.failure, self._failures_in_a_row = None, 0
            if self.metrics:
                self.metrics.replica_ready(self.name, replica)
            await self._notify()
        except ReplicaFailed as exc:
            self._failures_in_a_row += 1
            self.failure = str(exc)
            delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (self._failures_in_a_row - 1))
            self._next_start = time.monotonic() + delay
            logger.warning("%s; next try in %.1fs", str(exc).splitlines()[0], delay)
            if replica is not None:
                self._drop(replica)
                await replica.stop(grace=0)
            await self._notify()
            return None
        self._spawn(self._watch(replica))
        return replica

    async def _watch(self, replica: Replica) -> None:
        await replica.exited.wait()
        if replica in self.replicas:
            if replica.state != DRAINING:
                logger.warning("replica %s crashed (status %s); replacing it", replica.id, replica.exit_status)
            self._drop(replica)
            await replica.close_clients()
            self._kick.set()
            await self._notify()

    def _drop(self, replica: Replica) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)

    def _retire(self, replica: Replica) -> None:
        replica.state = DRAINING
        self._drop(replica)
        self._spawn(replica.stop(grace=self.spec.timeout))

    # -- revisions -------------------------------------------------------------------------

    def switch(self, revision: Revision, warm: Replica | None = None) -> None:
        """Route all new requests to `revision`; old replicas finish what they hold, then stop."""
        old = list(self.replicas)
        self.revision = revision
        self._window = ConcurrencyWindow(TICK, stable_window(revision.spec))
        self.replicas = []
        for replica in old:
            self._retire(replica)
        if warm is not None:
            self.replicas.append(warm)
            self._spawn(self._watch(warm))
        self.failure = None
        self._kick.set()
        self._spawn(self._notify())

    def recycle(self) -> None:
        """Replace every replica, keeping the revision (a secret in their environment changed):
        ready ones drain now (in-flight requests finish on them) and new requests start fresh
        ones; those still starting, with the environment of before, drain once ready."""
        cutoff = time.perf_counter()
        for replica in [r for r in self.replicas if r.state == READY]:
            self._retire(replica)
        if self.replicas:
            self._spawn(self._retire_started_before(cutoff))
        self._kick.set()
        self._spawn(self._notify())

    async def _retire_started_before(self, cutoff: float) -> None:
        # A placeholder (no `started_at`) becomes a replica whose environment was read when it
        # was put in the list: before the cutoff if it is there now.
        while any(r.state == STARTING and getattr(r, "started_at", 0.0) < cutoff for r in self.replicas):
            await asyncio.sleep(TICK)
        for replica in [r for r in self.replicas if r.state == READY and r.started_at < cutoff]:
            self._retire(replica)

    def status(self) -> dict[str, Any]:
        ready = sum(1 for r in self.replicas if r.state == READY)
        return {
            "revision": self.revision.id, "ready": ready, "replicas": len(self.replicas), "desired": self.desired,
            "in_flight": self._demand, "panic": self.panic,
            "replica_details": [r.to_json() for r in self.replicas if isinstance(r, Replica) and r.state != DEAD],
        }


class _Placeholder:
    """Stands in the replica list while a process is being spawned (so we do not spawn twice)."""

    state = STARTING
    in_flight = 0

    def __init__(self, revision: Revision) -> None:
        self.revision = revision
