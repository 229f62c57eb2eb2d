"""Calls whose results are collected later: `Job` (one async call, kept by the platform) and
`fan_out` (many direct calls at once, streamed back).

Example:
    job = classify.spawn(url="...")          # returns once the platform stored the job
    job.result(timeout=600)                  # the JSON result (bytes if it is not JSON)
    for label in classify.map(urls, concurrency=32):
        print(label)                         # in input order, at most ~64 inputs held at once
"""

from __future__ import annotations

import base64
import contextvars
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import TYPE_CHECKING, Any

from lepton.errors import InvocationError, JobCancelled, JobFailed, JobTimeout

if TYPE_CHECKING:
    from lepton.client import Client
    from lepton.functions import Function
    from lepton.spec import FunctionSpec

FINAL = ("succeeded", "failed", "cancelled")
POLL_SLICE = 30.0  # longest single long-poll; the platform allows 60 s
READ_MARGIN = 30.0  # on top of a long-poll's wait, for the answer itself
MAX_MAP_CONCURRENCY = 64


class Job:
    """A call started with `fn.spawn(...)` or `Client.spawn(...)`: the platform runs it (with
    retries) whether or not anyone waits, and keeps its result for `job_ttl` (a day by default).

    Example:
        job = add.spawn(a=1, b=2)
        job.status()["state"]    # "queued", "running", "succeeded", "failed" or "cancelled"
        job.result(timeout=60)   # 3; raises lepton.JobFailed, JobCancelled or TimeoutError
        lepton.Client().job(job.id).cancel()   # from anywhere, by id
    """

    def __init__(self, id: str, function: str, client: Client, *, state: str | None = None) -> None:
        self.id = id
        self.function = function
        self._client = client
        self._state = state

    @property
    def url(self) -> str:
        """The job's API path, relative to the platform's URL: anyone with a token may look
        it up there, as `lepton jobs get ID` does."""
        return f"/v1/jobs/{self.id}"

    def __repr__(self) -> str:
        state = f" {self._state}" if self._state else ""
        return f"<lepton.Job {self.id} of {self.function!r}{state}>"

    def status(self) -> dict[str, Any]:
        """The job as the platform has it: state, attempts, timings, result or error."""
        with self._api() as api:
            return self._poll(api, 0)

    def result(self, timeout: float | None = None) -> Any:
        """Wait until the job is final and return its result: the decoded JSON, or bytes when
        the function answered something else. Raises `JobFailed` (an `InvocationError` with the
        function's status code and error), `JobCancelled`, or `JobTimeout` (a `TimeoutError`)
        when `timeout` seconds pass first; the job itself goes on."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._api() as api:
            while True:
                wait = POLL_SLICE if deadline is None else min(POLL_SLICE, max(0.0, deadline - time.monotonic()))
                job = self._poll(api, wait)
                if job["state"] in FINAL:
                    return self._outcome(job)
                if deadline is not None and time.monotonic() >= deadline:
                    raise JobTimeout(f"job {self.id} ({self.function}) is still {job['state']} after {timeout:g}s (the job goes on)")

    def cancel(self) -> bool:
        """Cancel the job if it is queued or running; False when it had already finished."""
        try:
            with self._api() as api:
                self._state = api.request("DELETE", self.url).json()["state"]
        except InvocationError as exc:
            if exc.status_code != 409:
                raise
            return False
        return True

    def _api(self) -> AbstractContextManager[Client]:
        """The client that started the job, or, once that is closed, one like it."""
        return nullcontext(self._client) if not self._client.closed else self._client.sibling()

    def _poll(self, api: Client, wait: float) -> dict[str, Any]:
        """GET the job, waiting up to `wait` seconds on the platform for it to finish."""
        job: dict[str, Any] = api.request("GET", self.url, params={"wait": round(wait, 3)}, timeout=wait + READ_MARGIN).json()
        self._state = job["state"]
        return job

    def _outcome(self, job: dict[str, Any]) -> Any:
        if job["state"] == "cancelled":
            raise JobCancelled(self.id, self.function)
        if job["state"] == "failed":
            raise JobFailed(self.id, self.function, job["status_code"], job["error"], job["attempts"])
        if "result_base64" in job:
            return base64.b64decode(job["result_base64"])
        return job.get("result")


# -- fan-out: fn.map ------------------------------------------------------------------------


def default_concurrency(spec: FunctionSpec) -> int:
    """As many calls at once as the function's replicas take, at most 64."""
    per_replica = spec.concurrency or math.ceil(spec.autoscale_target)
    return min(MAX_MAP_CONCURRENCY, spec.max_scale * per_replica)


def function_payloads(fn: Function, inputs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Each input as the JSON object of the handler's parameters: a dict is keyword arguments,
    a tuple positional ones in the handler's order, anything else the one parameter of a
    one-parameter handler (a pydantic model, for a handler that takes one, is the body)."""
    from pydantic import BaseModel

    model = fn.signature.input_model
    if model is None or fn.signature.kind == "stream":
        raise TypeError(
            f"{fn.name!r} is a {fn.signature.kind} function; map calls JSON and batch functions (call .remote() for each input instead)"
        )
    names = list(model.model_fields)

    def payload(item: Any) -> dict[str, Any]:
        if isinstance(item, dict):
            return item
        if isinstance(item, tuple) and len(item) <= len(names):
            return dict(zip(names, item))
        if isinstance(item, BaseModel) and fn.signature.model_param:
            return item.model_dump(mode="json")
        if len(names) == 1 and not isinstance(item, tuple):
            return {names[0]: item}
        raise TypeError(
            f"{fn.name!r} takes {len(names)} parameter(s) ({', '.join(names) or 'none'}); "
            f"give each input to map as a dict of them or a tuple in that order, not {item!r}"
        )

    return map(payload, inputs)


def dict_payloads(inputs: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """`Client.map` knows no signature: each input must already be the parameters by name."""

    def payload(item: Any) -> dict[str, Any]:
        if not isinstance(item, dict):
            raise TypeError(f"Client.map takes a dict of parameters per input, not {item!r}; fn.map also takes tuples and single values")
        return item

    return map(payload, inputs)


def fan_out(
    client: Client | None, path: str, payloads: Iterable[Any], *, concurrency: int, ordered: bool, return_exceptions: bool
) -> Iterator[Any]:
    """Call `path` once per payload, `concurrency` at a time, yielding results as a generator.

    Inputs are pulled only as results are taken (about 2x `concurrency` in flight or waiting
    at once), so an endless or huge iterable streams. A failed call raises its error at its
    place in the results, after dropping the calls not yet started, unless
    `return_exceptions`, which yields the exception instead."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    return _fan_out(client, path, iter(payloads), concurrency, ordered, return_exceptions)


def _fan_out(
    client: Client | None, path: str, payloads: Iterator[Any], concurrency: int, ordered: bool, return_exceptions: bool
) -> Iterator[Any]:
    from lepton.client import Client

    # A client of its own, keeping a keep-alive connection per thread (httpx keeps 20).
    pooled = client.sibling(concurrency) if client is not None else Client(connections=concurrency)
    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="lepton-map")
    window = _Window(ordered)
    try:
        while True:
            for payload in islice(payloads, 2 * concurrency - len(window)):
                # In the caller's context: a function's map calls continue the trace it runs in.
                window.add(pool.submit(contextvars.copy_context().run, pooled.call, path, payload))
            if not window:
                return
            future = window.take()
            try:
                value = future.result()
            except Exception as exc:
                if not return_exceptions:
                    raise
                value = exc
            yield value
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if window:  # stopped early: calls already running finish on their own, then the connections close
            threading.Thread(target=_close_when_idle, args=(pool, pooled), name="lepton-map-close").start()
        else:
            pooled.close()


def _close_when_idle(pool: ThreadPoolExecutor, pooled: Client) -> None:
    pool.shutdown(wait=True)
    pooled.close()


class _Window:
    """Calls submitted and not yet yielded, taken in input order or in the order they finish."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self.in_order: deque[Future[Any]] = deque()
        self.finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, future: Future[Any]) -> None:
        self.size += 1
        if self.ordered:
            self.in_order.append(future)
        else:
            future.add_done_callback(self.finished.put)

    def take(self) -> Future[Any]:
        """The next future to yield, once it is done (blocks)."""
        self.size -= 1
        return self.in_order.popleft() if self.ordered else self.finished.get()
