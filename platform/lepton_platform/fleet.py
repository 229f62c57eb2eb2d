"""A function's live replicas and the reconcile loop that keeps their count where the
autoscaler wants it. The activator acquires replicas here; deploys switch revisions here.

Requests that find no free slot wait in one queue per function and are served in arrival
order (Knative's activator does the same with its FIFO breaker); past the queue's limit
they are refused at once. The reconcile loop runs only while the function has replicas,
traffic or a start to make: a function at zero costs no CPU until something wakes it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from lepton_platform.autoscaler import ConcurrencyWindow, decide, stable_window
from lepton_platform.catalog import Revision
from lepton_platform.replicas import DEAD, DRAINING, READY, STARTING, NoCapacity, Replica, ReplicaFactory, ReplicaFailed
from lepton_platform.starts import FIRST, MORE

if TYPE_CHECKING:
    from lepton.spec import FunctionSpec

logger = logging.getLogger("lepton.platform.fleet")
TICK = 0.1
READY_TIMEOUT = 300.0
MAX_RESTART_DELAY = 30.0


class StartFailed(Exception):
    """No replica could be started; the message says why (with the log's last lines)."""


class Overloaded(Exception):
    """As many requests are waiting for a replica as the function's queue holds."""


class Fleet:
    def __init__(self, revision: Revision, factory: ReplicaFactory, *, metrics: Any = None, queue_limit: int = 1000) -> None:
        self.revision = revision
        self.factory = factory
        self.metrics = metrics
        self.queue_limit = queue_limit  # the platform's default; the function's `max_queue` wins
        self.replicas: list[Replica | _Placeholder] = []
        self.desired = 0
        self.panic = False
        self._burst_at = 0.0  # when a panic-sized burst was last seen (monotonic)
        self.failure: str | None = None
        self._failures_in_a_row = 0
        self._next_start = 0.0
        self._demand = 0
        self._queue: deque[asyncio.Future[Replica]] = deque()
        self._area = 0.0
        self._last_change = self._last_scale = time.monotonic()
        self._last_request = -math.inf  # never called: a new function is not kept warm
        self._window = ConcurrencyWindow(TICK, stable_window(revision.spec))
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return self.revision.function

    @property
    def spec(self) -> FunctionSpec:
        return self.revision.spec

    @property
    def awake(self) -> bool:
        """Whether its reconcile loop is running (it sleeps while the function is at zero)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.spec.min_scale:
            self._wake()

    async def close(self) -> None:
        self._closed = True
        if self._task:
            self._task.cancel()
        for task in list(self._background):
            task.cancel()
        self._fail_waiters(f"function {self.name!r} was removed")
        await asyncio.gather(*(r.stop(grace=5) for r in self.replicas), return_exceptions=True)
        self.replicas.clear()

    def drain(self) -> None:
        """No longer routed (its revision left the traffic split): replicas finish what they
        hold and stop; requests still waiting for one are told to try again."""
        self._closed = True
        if self._task:
            self._task.cancel()
        self._fail_waiters(f"revision {self.revision.id} of function {self.name!r} stopped taking traffic; try again")
        for replica in list(self.replicas):
            self._retire(replica)
        self.desired = 0
        if self.metrics:
            self.metrics.observe_fleet(self)

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
        """The common case, without waiting: a ready replica with a free slot, least loaded
        first, unless others are already waiting (they go first)."""
        if self._queue:
            return None
        replica = self._pick()
        if replica is not None:
            self._account(+1)
            replica.acquire()
        return replica

    async def acquire(self, timeout: float, *, bounded: bool = True) -> tuple[Replica, bool]:
        """A replica with a free slot and whether the request waited for a cold start. Past
        the queue's limit a `bounded` request is refused; the platform's own callers (broker
        deliveries, jobs) are not: they keep no more in flight than the function can take."""
        replica = self.try_acquire()
        if replica is not None:  # no queue, no timer
            return replica, False
        limit = self.spec.max_queue or self.queue_limit
        if bounded and len(self._queue) >= limit:
            raise Overloaded(
                f"function {self.name!r} has {len(self._queue)} requests waiting for a replica, "
                f"its limit (max_queue={limit}); try again shortly"
            )
        if self._closed:
            raise StartFailed(f"function {self.name!r} was removed")
        cold = not any(r.state == READY for r in self.replicas)
        if cold and self.failure and time.monotonic() < self._next_start and not any(r.state == STARTING for r in self.replicas):
            raise StartFailed(self.failure)  # in its crash-loop backoff: after it, a request tries again
        self._account(+1)
        waiter: asyncio.Future[Replica] = asyncio.get_running_loop().create_future()
        self._queue.append(waiter)
        if len(self._queue) == 1 or not self.awake:  # a queue forming: decide now, not at the next tick
            self._wake()
        try:
            async with asyncio.timeout(timeout):
                return await waiter, cold
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(waiter.result())  # handed a replica just as it gave up
            else:
                self._account(-1)
                if waiter in self._queue:
                    self._queue.remove(waiter)
            raise

    def release(self, replica: Replica) -> None:
        replica.release()
        self._account(-1)
        if self._queue:
            self._dispatch()

    def _pick(self) -> Replica | None:
        limit = self.spec.concurrency
        best: Replica | _Placeholder | None = None
        for replica in self.replicas:
            if replica.state != READY or (limit and replica.in_flight >= limit):
                continue
            if best is None or replica.in_flight < best.in_flight:
                best = replica
        assert not isinstance(best, _Placeholder)  # never ready
        return best

    def _dispatch(self) -> None:
        """Free slots go to the waiting requests, first come first served."""
        while self._queue:
            replica = self._pick()
            if replica is None:
                return
            waiter = self._queue.popleft()
            if not waiter.done():
                replica.acquire()
                waiter.set_result(replica)

    def _fail_waiters(self, why: str) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done():
                waiter.set_exception(StartFailed(why))

    # -- reconcile -------------------------------------------------------------------------

    def _wake(self) -> None:
        """Something happened (a request, a deploy, a replica's end): decide again now, and
        start the loop if the function was asleep at zero."""
        self._kick.set()
        if self._task is None or self._task.done():
            if self._closed:
                return
            now = time.monotonic()  # a fresh window: the first sample is the demand of now
            self._integrate(now)
            self._area, self._last_scale = 0.0, now
            self._window = ConcurrencyWindow(TICK, stable_window(self.spec))
            self._task = asyncio.create_task(self._reconcile_loop(), name=f"fleet-{self.name}")

    def _asleep(self) -> bool:
        """Nothing to watch: no replica, nothing in flight or waiting, none wanted."""
        return not self.replicas and not self._demand and not self._queue and self.desired == 0

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._kick.wait(), TICK)
            except TimeoutError:
                pass
            self._kick.clear()
            try:
                self._scale()
            except Exception:
                logger.exception("reconcile of %s failed; retrying", self.name)
            if self._asleep():
                return

    def _scale(self) -> None:
        now = time.monotonic()
        self._integrate(now)
        span = now - self._last_scale
        if span >= TICK / 2:
            # Time-weighted average in-flight since the last sample, so short requests count too.
            self._window.add(self._area / span)
            self._area, self._last_scale = 0.0, now
        else:  # woken early (a burst is arriving): what is in flight now counts at once
            self._window.raise_last(self._demand)
        stable_avg, panic_avg = self._window.averages()
        ready = sum(1 for r in self.replicas if r.state == READY)
        decision = decide(
            self.spec,
            stable_avg=stable_avg,
            panic_avg=panic_avg,
            ready=ready,
            idle_for=0.0 if self._demand else now - self._last_request,
            in_flight=self._demand,
            was_panicking=self.panic,
            calm_for=now - self._burst_at,
        )
        self.desired, self.panic = decision.desired, decision.panic
        if decision.triggered:
            self._burst_at = now
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

    async def _launch(self) -> None:
        """Start one replica of the routed revision (one of the platform's start slots while it
        starts) and watch it until it dies."""
        revision = self.revision
        placeholder = _Placeholder(revision)
        self.replicas.append(placeholder)  # counts as starting while it waits and spawns
        replica = None
        try:
            first = all(r is placeholder for r in self.replicas if r.state in (READY, STARTING))
            async with self.factory.starts.slot(FIRST if first else MORE):
                try:
                    replica = await self.factory.start(revision)
                except NoCapacity:
                    return  # another fleet took the GPUs first; the next tick looks again
                finally:
                    self._drop(placeholder)
                if self.revision is not revision or self._closed:  # switched or drained while it spawned: not needed
                    self._spawn(replica.stop(grace=0))
                    return
                self.replicas.append(replica)
                await replica.wait_ready(READY_TIMEOUT)
        except ReplicaFailed as exc:
            if replica is not None and replica.state == DRAINING:
                return  # retired while it started (a deploy or a scale-down): not a failure

            self._failures_in_a_row += 1
            self.failure = str(exc)
            delay = min(MAX_RESTART_DELAY, 0.5 * 2 ** (self._failures_in_a_row - 1))
            self._next_start = time.monotonic() + delay
            logger.warning("%s; next try in %.1fs", str(exc).splitlines()[0], delay)
            if replica is not None:
                self._drop(replica)
            if not any(r.state in (STARTING, READY) for r in self.replicas):
                self._fail_waiters(self.failure)
            if replica is not None:
                await replica.stop(grace=0)
            return
        finally:
            self._drop(placeholder)  # also when cancelled while it waited for a slot
        self.failure, self._failures_in_a_row = None, 0
        if self.metrics:
            self.metrics.replica_ready(self.name, replica)
        self._dispatch()
        self._spawn(self._watch(replica))

    async def _watch(self, replica: Replica) -> None:
        await replica.exited.wait()
        if replica in self.replicas:
            if replica.state != DRAINING:
                logger.warning("replica %s crashed (status %s); replacing it", replica.id, replica.exit_status)
            self._drop(replica)
            await replica.close_clients()
            self._wake()

    def _drop(self, replica: Replica | _Placeholder) -> None:
        if replica in self.replicas:
            self.replicas.remove(replica)

    def _retire(self, replica: Replica | _Placeholder) -> None:
        replica.state = DRAINING
        self._drop(replica)
        self._spawn(replica.stop(grace=self.spec.timeout))

    # -- revisions -------------------------------------------------------------------------

    def switch(self, revision: Revision, warm: Replica | None = None) -> None:
        """Route all new requests to `revision`; old replicas finish what they hold, then stop.
        The new revision's `warm` replica (the deploy's proof) stays only if the function has
        had traffic within `scale_down_after` or a `min_scale`: a deployed function nobody
        calls goes back to zero at once."""
        in_use = self._demand > 0 or time.monotonic() - self._last_request < self.spec.scale_down_after
        old = list(self.replicas)
        self.revision = revision
        self._window = ConcurrencyWindow(TICK, stable_window(revision.spec))
        self.replicas = []
        for replica in old:
            self._retire(replica)
        if warm is not None:
            if in_use or revision.spec.min_scale:
                self.replicas.append(warm)
                self._spawn(self._watch(warm))
            else:
                self._retire(warm)
        self.failure = None
        self._wake()
        self._dispatch()

    def recycle(self) -> None:
        """Replace every replica, keeping the revision (a secret in their environment changed):
        ready ones drain now (in-flight requests finish on them) and new requests start fresh
        ones; those still starting, with the environment of before, drain once ready."""
        cutoff = time.perf_counter()
        for replica in [r for r in self.replicas if r.state == READY]:
            self._retire(replica)
        if self.replicas:
            self._spawn(self._retire_started_before(cutoff))
        self._wake()

    async def _retire_started_before(self, cutoff: float) -> None:
        # A placeholder (no `started_at`) becomes a replica whose environment was read when it
        # was put in the list: before the cutoff if it is there now.
        while any(r.state == STARTING and getattr(r, "started_at", 0.0) < cutoff for r in self.replicas):
            await asyncio.sleep(TICK)
        for replica in [r for r in self.replicas if r.state == READY and not isinstance(r, _Placeholder) and r.started_at < cutoff]:
            self._retire(replica)

    def status(self) -> dict[str, Any]:
        ready = sum(1 for r in self.replicas if r.state == READY)
        return {
            "revision": self.revision.id,
            "ready": ready,
            "replicas": len(self.replicas),
            "desired": self.desired,
            "in_flight": self._demand,
            "queued": len(self._queue),
            "panic": self.panic,
            "awake": self.awake,
            "replica_details": [r.to_json() for r in self.replicas if isinstance(r, Replica) and r.state != DEAD],
        }


class _Placeholder:
    """Stands in the replica list while a process is being spawned (so we do not spawn twice)."""

    state = STARTING
    in_flight = 0

    def __init__(self, revision: Revision) -> None:
        self.revision = revision

    async def stop(self, grace: float = 0) -> None:
        """Nothing runs yet; the launch it stands for sees it was retired and stops its replica."""
        self.state = DRAINING
