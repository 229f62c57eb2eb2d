"""Runs async jobs through the platform's own request path, so a job wakes a function at zero
and waits for a free slot like any call, on either backend. At most as many jobs of one
function run at once as its replicas can take (`max_scale` x per-replica concurrency); the
rest wait in the store, not in memory.

A job is offered to the runner as soon as it is committed (no database read on that path);
jobs that could not start then, retries and jobs left from before a restart are picked up
by one loop that sleeps until something is due. Each finished job is announced to the broker
as `dev.lepton.job.succeeded` or `dev.lepton.job.failed`; a job is marked announced only
after the broker stored its event, and announcing again after a crash is harmless (the event
id is the job's, so the broker drops the duplicate).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lepton.runtime.tracing import TRACEPARENT, TRACESTATE
from lepton_platform.asgi import ASGIApp, ResponseTooLarge, call
from lepton_platform.autoscaler import capacity
from lepton_platform.broker.log import Event
from lepton_platform.jobs.store import CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, Job, JobStore, json_result

if TYPE_CHECKING:
    from lepton.spec import FunctionSpec
    from lepton_platform.broker import Broker

logger = logging.getLogger("lepton.platform.jobs")
HOUSEKEEPING = 60.0
EVENT_RESULT_LIMIT = 64 << 10  # a JSON result up to this size rides along in the job's event
SUCCEEDED_TYPE, FAILED_TYPE = "dev.lepton.job.succeeded", "dev.lepton.job.failed"


class QueueFull(Exception):
    """The function has `limits.max_queued_jobs` jobs waiting: a new one is refused (429)."""


def retryable(code: int) -> bool:
    """Worth another attempt: no answer, a 5xx (a timeout is a 504) or 429. Other 4xx would
    fail the same way again."""
    return code == 0 or code >= 500 or code == 429


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        broker: Broker,
        token: str,
        spec_of: Callable[[str], FunctionSpec | None],
        *,
        ttl: float,
        max_result_bytes: int,
        max_queued: int,
    ) -> None:
        self.store = store
        self.broker = broker
        self.token = token
        self.spec_of = spec_of
        self.ttl = ttl
        self.max_result_bytes = max_result_bytes
        self.max_queued = max_queued
        self.queued: collections.Counter[str] = collections.Counter()  # jobs waiting to run, per function
        self.app: ASGIApp | None = None  # the request path, set once it is built
        self.running: dict[str, asyncio.Task[None]] = {}
        self.per_function: dict[str, int] = {}
        self._cancelled: set[str] = set()  # running jobs being cancelled
        self._closing: set[str] = set()  # queued jobs being cancelled: not to be started meanwhile
        self._held: set[str] = set()  # functions whose due jobs wait for room: new ones queue behind them
        self._final: dict[str, asyncio.Event] = {}
        self._wake = asyncio.Event()
        self._backlog = True  # jobs may wait in the store: the loop looks (and clears it when none do)
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        queued, failed = await asyncio.to_thread(self.store.recover)
        self.queued.update(await asyncio.to_thread(self.store.queued_counts))
        if queued or failed:
            logger.info("jobs after the restart: %d running ones queued again, %d failed", queued, failed)
        self.store.commits.start()
        self._tasks = [asyncio.create_task(self._loop(), name="jobs"), asyncio.create_task(self._housekeeping(), name="jobs-housekeeping")]

    async def stop(self) -> None:
        """Running jobs stay `running` in the store: the next start queues them again."""
        for task in [*self._tasks, *self.running.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self.running.values(), return_exceptions=True)
        await self.store.commits.stop()
        self.store.close()

    # -- submit, wait, cancel ---------------------------------------------------------------

    async def submit(self, spec: FunctionSpec, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> Job:
        """Store a job durably, then start it if the function has room."""
        if self.queued[spec.name] >= self.max_queued:
            raise QueueFull(
                f"function {spec.name!r} has {self.queued[spec.name]} jobs waiting, the most it may "
                "(limits.max_queued_jobs); nothing was accepted, send it again later"
            )
        self.queued[spec.name] += 1  # before the commit: jobs in flight to the disk count too
        try:
            job = await self.store.add(spec.name, method, target, headers, body, spec.retries.max_retries + 1)
        except BaseException:
            self._dequeued(spec.name)
            raise
        if job.function not in self._held and self.per_function.get(job.function, 0) < capacity(spec):
            self._start(job, body)
        else:  # first come, first served: the loop starts the oldest due job when there is room
            self._held.add(job.function)
            self._backlog = True
            self._wake.set()
        return job

    async def wait(self, job_id: str, timeout: float) -> Job | None:
        """The job once it is final, or as it is when `timeout` runs out."""
        final = self._final.setdefault(job_id, asyncio.Event())  # before the read: an end in between sets it
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is None or job.final or timeout <= 0:
            if job is None or job.final:  # wake anyone who set it up meanwhile, too
                self._final.pop(job_id, final).set()
            return job
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(final.wait(), timeout)
        return await asyncio.to_thread(self.store.get, job_id)

    async def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job; False if it is already final."""
        task = self.running.get(job.id)
        if task is not None:
            self._cancelled.add(job.id)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if self.running.get(job.id) is not task:
                return True  # its attempt saw the cancel and recorded it
            self._forget(job)  # cancelled before its first step: it never left the queue
        job.state, job.finished_at, job.error = CANCELLED, time.time(), "cancelled before it ran"
        self._closing.add(job.id)
        try:
            if await self.store.finish(job, None, only_queued=True):
                self._dequeued(job.function)
            elif not await self.store.finish(job, None):  # between two attempts' records: running in the store
                return False
        finally:
            self._closing.discard(job.id)
        await self._finished(job, None)
        return True

    def _forget(self, job: Job) -> None:
        """The job no longer runs here: drop it from what is running."""
        self.running.pop(job.id, None)
        self._cancelled.discard(job.id)
        self.per_function[job.function] -= 1
        if not self.per_function[job.function]:
            del self.per_function[job.function]

    def _dequeued(self, function: str) -> None:
        self.queued[function] -= 1
        if self.queued[function] <= 0:
            del self.queued[function]

    # -- running ----------------------------------------------------------------------------

    def _start(self, job: Job, body: bytes | None) -> None:
        if job.id in self.running or job.id in self._closing:
            return
        self.per_function[job.function] = self.per_function.get(job.function, 0) + 1
        self.running[job.id] = asyncio.create_task(self._run(job, body), name=job.id)

    async def _loop(self) -> None:
        """Start what is due and has room; sleep until the next retry is due or a job ends."""
        while True:
            self._wake.clear()
            now = time.time()
            try:
                waiting = await asyncio.to_thread(self.store.waiting, now)
                self._held &= set(waiting)
                for function in waiting:
                    busy = self.per_function.get(function, 0)
                    free = max(0, capacity(self.spec_of(function)) - busy)
                    due = [
                        job
                        for job in await asyncio.to_thread(self.store.due, function, free + busy + 1, now)
                        if job.id not in self.running and job.id not in self._closing
                    ]
                    for job in due[:free]:
                        self._start(job, None)
                    if len(due) > free:
                        self._held.add(function)  # one of its jobs ending wakes us
                    else:
                        self._held.discard(function)
                wake_at = await asyncio.to_thread(self.store.next_due, now)
                self._backlog = bool(waiting) or wake_at is not None
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("job loop failed; retrying")
                wake_at = now + 1
            timeout = None if wake_at is None else max(0.0, wake_at - time.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _run(self, job: Job, body: bytes | None) -> None:
        """One attempt. A job just submitted (`body` given) is known to be queued and is marked
        running in parallel with the call; one the loop read from the store is claimed first,
        since that read may be stale (the job cancelled, or run, meanwhile)."""
        result: bytes | None = None
        marked: asyncio.Task[Any] | None = None
        left_queue = False  # counted out of `queued`
        job.started_at = job.started_at or time.time()
        try:
            if body is None:
                if not await self.store.claim(job):
                    job.state = RUNNING  # not ours to run, nor to record (whoever took it counted it out)
                    return
                self._dequeued(job.function)
                left_queue = True
                body = await asyncio.to_thread(self.store.body, job.id)
            else:
                marked = asyncio.create_task(self.store.claim(job))
                self._dequeued(job.function)
                left_queue = True
            job.attempts += 1
            job.state = RUNNING
            result = await self._attempt(job, body)
        except asyncio.CancelledError:
            if job.id not in self._cancelled:
                raise  # the platform is stopping: the job stays running and runs again after the restart
            job.state, job.error = CANCELLED, "cancelled while it ran"
            job.finished_at = time.time()
        except Exception as exc:  # a bug of ours: fail the job rather than retry it forever
            logger.exception("job %s failed in the platform", job.id)
            job.state, job.error, job.finished_at = FAILED, f"internal error in the platform: {exc}", time.time()
        finally:
            if marked is not None:
                await asyncio.gather(marked, return_exceptions=True)
            if not left_queue and job.state in (CANCELLED, FAILED):
                self._dequeued(job.function)  # it ends straight from the queue
            self._forget(job)
            if self._backlog:
                self._wake.set()  # room for a job that waits
        if job.state != RUNNING:
            await self._record(job, result)

    async def _record(self, job: Job, result: bytes | None) -> None:
        """Store how the attempt ended, trying again for a while if the disk fails us (until
        then the job stays running in the store, and runs again after a restart)."""
        for delay in (0.5, 2.0, 8.0, None):
            try:
                if job.state == QUEUED:
                    if await self.store.retry(job):  # not if it was cancelled meanwhile
                        self.queued[job.function] += 1
                    self._backlog = True
                    self._wake.set()
                elif await self.store.finish(job, result):
                    await self._finished(job, result)
                return
            except (OSError, sqlite3.Error) as exc:
                if delay is None:
                    logger.error("job %s: could not record its %s state (%s); it runs again after a restart", job.id, job.state, exc)
                    return
                logger.warning("job %s: could not record its %s state (%s); trying again", job.id, job.state, exc)
                await asyncio.sleep(delay)

    async def _attempt(self, job: Job, body: bytes) -> bytes | None:
        """One call through the request path; sets the job's next state and returns its result."""
        assert self.app is not None, "the job runner needs the request path"
        spec = self.spec_of(job.function)
        headers = [*job.headers, ("authorization", f"Bearer {self.token}")]
        timeout = (spec.timeout if spec else 30.0) * 2 + 10  # waiting for a replica, then the call itself
        try:
            status, response_headers, response = await asyncio.wait_for(
                call(
                    self.app, job.method, job.path, headers, body, scope={"lepton.job": (job.id, job.attempts)}, limit=self.max_result_bytes
                ),
                timeout,
            )
        except ResponseTooLarge as exc:
            job.state, job.status_code = FAILED, None
            job.error = f"result not kept: {exc} (limits.max_job_result_bytes)"
            job.finished_at = time.time()
            return None
        except TimeoutError:
            status, response_headers, response = 0, {}, f"no answer within {timeout:g}s".encode()
        job.revision = response_headers.get("x-lepton-revision") or job.revision
        job.status_code = status or None
        if 200 <= status < 300:
            job.state, job.finished_at, job.error = SUCCEEDED, time.time(), None
            job.content_type = response_headers.get("content-type")
            return response
        job.error = _detail(status, response)
        if retryable(status) and job.attempts < job.max_attempts and spec is not None:
            job.state, job.due = QUEUED, time.time() + spec.retries.backoff_seconds(job.attempts)
            logger.info("job %s: attempt %d failed (%s); retrying", job.id, job.attempts, job.error)
        else:
            job.state, job.finished_at = FAILED, time.time()
        return None

    async def _finished(self, job: Job, result: bytes | None) -> None:
        final = self._final.pop(job.id, None)
        if final is not None:
            final.set()
        try:
            await self._announce([(job, result)])
        except Exception:  # the housekeeping round announces it later
            logger.exception("job %s: could not announce its end", job.id)

    async def _announce(self, ended: list[tuple[Job, bytes | None]]) -> None:
        """Publish the end of succeeded and failed jobs (a cancelled one has no event), then
        mark them announced."""
        events = [job_event(job, result) for job, result in ended if job.state != CANCELLED]
        if events:
            await self.broker.publish(events)
        await self.store.announced([job.id for job, _ in ended])

    async def _housekeeping(self) -> None:
        while True:
            try:
                left = await asyncio.to_thread(self.store.unannounced, EVENT_RESULT_LIMIT)
                if left:
                    await self._announce(left)
                gone = await asyncio.to_thread(self.store.forget_finished, time.time() - self.ttl)
                if gone:
                    logger.info("removed %d jobs finished more than %gs ago (job_ttl)", gone, self.ttl)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("job housekeeping failed")
            await asyncio.sleep(min(HOUSEKEEPING, self.ttl / 2))


def job_event(job: Job, result: bytes | None) -> Event:
    """The CloudEvent that says a job ended, so jobs chain into triggers."""
    data: dict[str, Any] = {
        "id": job.id,
        "function": job.function,
        "revision": job.revision,
        "state": job.state,
        "attempts": job.attempts,
        "status_code": job.status_code,
        "error": job.error,
    }
    if result is not None and len(result) <= EVENT_RESULT_LIMIT:
        decoded = json_result(job.content_type, result)
        if isinstance(decoded, (dict, list, str, int, float, bool)) or decoded is None:
            data["result"] = decoded
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.finished_at or time.time()))
    # The trace the job was submitted in (its stored headers have it): what it triggers continues it.
    trace = {name: value for name, value in job.headers if name in (TRACEPARENT, TRACESTATE)}
    return Event.from_json(
        {
            "specversion": "1.0",
            "id": f"{job.id}.{job.state}",
            "source": f"/jobs/{job.function}",
            "type": SUCCEEDED_TYPE if job.state == SUCCEEDED else FAILED_TYPE,
            "subject": job.id,
            "time": stamp,
            "datacontenttype": "application/json",
            **trace,
            "data": data,
        }
    )


def _detail(status: int, body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail", "")
        text = detail if isinstance(detail, str) else json.dumps(detail)
    except (ValueError, AttributeError):
        text = body[:500].decode(errors="replace")
    return f"{status}: {text}" if status else text
