"""The activator (platform/lepton_platform/activator.py) over a real Fleet, in-process: a
request that finds no free replica within the function's timeout gets a 504, a full queue a
503 with Retry-After, and a replica never holds more than `concurrency` requests at once.
Replicas are stand-ins with slots (tests/test_fleet_queue.py's); the factory starts none."""

from __future__ import annotations

import asyncio
import json
import time
import types
from typing import Any

import pytest

from lepton.spec import FunctionSpec
from lepton_platform.activator import Activator, acquire
from lepton_platform.asgi import Refusal
from lepton_platform.catalog import Revision
from lepton_platform.fleet import Fleet
from lepton_platform.metrics import PlatformMetrics
from lepton_platform.replicas import NoCapacity
from lepton_platform.starts import StartSlots
from tests.test_fleet_queue import ReadyReplica


class NoStarts:
    """A factory with no room: the fleet's loop may try to start more, and never gets one."""

    def __init__(self) -> None:
        self.starts = StartSlots(2)
        self.gpus = types.SimpleNamespace(fits=lambda count: True)  # stands in for GpuPlacement

    async def start(self, revision: Revision) -> None:
        raise NoCapacity("none in this test")


class CountingReplica(ReadyReplica):
    """Remembers the most requests it ever held at once."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.peak = 0

    def acquire(self) -> None:
        super().acquire()
        self.peak = max(self.peak, self.in_flight)


def fleet(replicas: int = 1, **options: Any) -> tuple[Fleet, list[CountingReplica]]:
    # min_scale = max_scale = the stand-ins: the reconcile loop neither starts nor retires any.
    options = {"concurrency": 1, "timeout": 5, **options}
    spec = FunctionSpec(name="fn", min_scale=replicas, max_scale=replicas, **options)
    revision = Revision("fn-00001", "fn", 1, "c", "sha256:x", spec, time.time(), "ready")
    serving = Fleet(revision, NoStarts(), queue_limit=100)  # type: ignore[arg-type]
    stand_ins = [CountingReplica(f"r{i}") for i in range(replicas)]
    serving.replicas.extend(stand_ins)  # type: ignore[arg-type]
    return serving, stand_ins


def refusals(metrics: PlatformMetrics, code: int) -> int:
    return metrics.invocations.codes.get(("fn", code), 0)


async def until(condition: Any, message: str) -> None:
    """Let the event loop run until `condition()` holds (bounded, so a broken fleet fails)."""
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


def http_scope(serving: Fleet, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": "/fn/fn", "headers": [], "lepton.fleet": serving, **extra}


class Sent:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return next(m["status"] for m in self.messages if "status" in m)

    @property
    def detail(self) -> str:
        return json.loads(b"".join(m.get("body", b"") for m in self.messages if m["type"].endswith("body")))["detail"]


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


# -- 504 -----------------------------------------------------------------------------------------


def test_no_free_replica_within_the_timeout_is_a_504_naming_the_function():
    async def scenario() -> tuple[Any, dict, int]:
        serving, _ = fleet(timeout=0.2)
        metrics = PlatformMetrics()
        held, _ = await serving.acquire(timeout=5)
        async with asyncio.timeout(5):
            refused = await acquire(serving, metrics)
        status = serving.status()
        serving.release(held)
        await serving.close()
        return refused, status, refusals(metrics, 504)

    refused, status, counted = asyncio.run(scenario())
    assert refused == Refusal(504, "function 'fn' had no free replica within 0.2s")
    assert (status["queued"], status["in_flight"]) == (0, 1), "the refused request left its place in the queue"
    assert counted == 1


def test_a_slot_freed_before_the_timeout_goes_to_the_waiting_request():
    async def scenario() -> tuple[Any, int]:
        serving, _ = fleet(timeout=5)
        metrics = PlatformMetrics()
        held, _ = await serving.acquire(timeout=5)
        waiting = asyncio.create_task(acquire(serving, metrics))
        await until(lambda: serving.status()["queued"] == 1, "the request waits")
        serving.release(held)
        got = await asyncio.wait_for(waiting, 5)
        serving.release(got[0])
        await serving.close()
        return got, refusals(metrics, 504)

    (got, cold), refused = asyncio.run(scenario())
    assert got.id == "r0" and cold is False and refused == 0


def test_the_asgi_layer_answers_504_as_json_and_never_calls_the_function():
    async def scenario() -> tuple[Sent, list, int]:
        serving, _ = fleet(timeout=0.1)
        called: list = []

        async def function(scope: dict, receive: Any, send: Any) -> None:
            called.append(scope)

        held, _ = await serving.acquire(timeout=5)
        sent = Sent()
        await asyncio.wait_for(Activator(function, PlatformMetrics())(http_scope(serving), receive, sent), 5)
        serving.release(held)
        await serving.close()
        return sent, called, serving.status()["in_flight"]

    sent, called, in_flight = asyncio.run(scenario())
    assert (sent.status, sent.detail) == (504, "function 'fn' had no free replica within 0.1s")
    assert called == [] and in_flight == 0


def test_a_refused_websocket_gets_the_504_as_its_handshake_answer():
    async def scenario() -> Sent:
        serving, _ = fleet(timeout=0.1)
        held, _ = await serving.acquire(timeout=5)
        sent = Sent()
        await asyncio.wait_for(Activator(None, PlatformMetrics())(http_scope(serving, type="websocket"), receive, sent), 5)  # type: ignore[arg-type]
        serving.release(held)
        await serving.close()
        return sent

    sent = asyncio.run(scenario())
    assert sent.messages[0]["type"] == "websocket.http.response.start" and sent.status == 504


def test_a_refusal_while_the_function_is_warm_is_not_a_cold_start():
    async def scenario() -> float | None:
        serving, _ = fleet(timeout=0.05)
        metrics = PlatformMetrics()
        held, _ = await serving.acquire(timeout=5)
        assert isinstance(await acquire(serving, metrics), Refusal)
        serving.release(held)
        await serving.close()
        return metrics.registry.get_sample_value("lepton_cold_starts_total", {"function": "fn"})

    assert asyncio.run(scenario()) in (None, 0.0)


# -- 503 -----------------------------------------------------------------------------------------


def test_a_full_queue_is_a_503_with_retry_after_but_the_platforms_own_callers_wait():
    async def scenario() -> tuple[Any, Any]:
        serving, _ = fleet(max_queue=1)
        metrics = PlatformMetrics()
        held, _ = await serving.acquire(timeout=5)
        first = asyncio.create_task(acquire(serving, metrics))
        await until(lambda: serving.status()["queued"] == 1, "one waits")
        refused = await acquire(serving, metrics)
        internal = asyncio.create_task(acquire(serving, metrics, bounded=False))  # a broker delivery, a job
        await until(lambda: serving.status()["queued"] == 2, "the delivery waits past the limit")
        serving.release(held)
        for task in (first, internal):
            replica, _ = await asyncio.wait_for(task, 5)
            serving.release(replica)
        await serving.close()
        return refused, internal.result()

    refused, internal = asyncio.run(scenario())
    assert refused.status == 503 and refused.headers == ((b"retry-after", b"1"),)
    assert refused.detail.startswith("function 'fn' has 1 requests waiting for a replica, its limit (max_queue=1)")
    assert not isinstance(internal, Refusal)


# -- the per-replica concurrency cap -------------------------------------------------------------


def test_a_replica_never_holds_more_than_concurrency_requests_at_once():
    async def scenario() -> tuple[list[int], list[int], dict, list[int]]:
        serving, replicas = fleet(replicas=2, concurrency=2)
        metrics = PlatformMetrics()
        go = asyncio.Event()
        running: dict[str, int] = {"r0": 0, "r1": 0}
        most: dict[str, int] = {"r0": 0, "r1": 0}
        codes: list[int] = []

        async def function(scope: dict, receive: Any, send: Any) -> None:
            name = scope["lepton.replica"].id
            running[name] += 1
            most[name] = max(most[name], running[name])
            await go.wait()
            running[name] -= 1
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        activator = Activator(function, metrics)

        async def call() -> None:
            sent = Sent()
            await activator(http_scope(serving), receive, sent)
            codes.append(sent.status)

        calls = [asyncio.create_task(call()) for _ in range(10)]
        await until(lambda: serving.status()["queued"] == 6, "4 run, 6 wait")
        while_held = [r.in_flight for r in replicas]
        go.set()
        await asyncio.wait_for(asyncio.gather(*calls), 5)
        await serving.close()
        return while_held, [r.peak for r in replicas], most, codes

    while_held, peaks, most, codes = asyncio.run(scenario())
    assert while_held == [2, 2], "the least loaded replica first, up to its limit"
    assert peaks == [2, 2] and most == {"r0": 2, "r1": 2}
    assert codes == [200] * 10


def test_the_slot_comes_back_when_the_function_fails():
    async def scenario() -> tuple[int, int]:
        serving, (replica,) = fleet()
        metrics = PlatformMetrics()

        async def function(scope: dict, receive: Any, send: Any) -> None:
            raise RuntimeError("the replica connection broke")

        with pytest.raises(RuntimeError):
            await Activator(function, metrics)(http_scope(serving), receive, Sent())
        await serving.close()
        return replica.in_flight, refusals(metrics, 500)

    assert asyncio.run(scenario()) == (0, 1)


def test_a_request_goes_to_the_least_loaded_replica():
    async def scenario() -> list[int]:
        serving, replicas = fleet(replicas=3, concurrency=4)
        held = [await serving.acquire(timeout=5) for _ in range(5)]
        loads = [r.in_flight for r in replicas]
        for replica, _ in held:
            serving.release(replica)
        await serving.close()
        return loads

    assert asyncio.run(scenario()) == [2, 2, 1]
