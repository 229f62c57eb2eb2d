"""Crash-loop backoff in a fleet (platform/lepton_platform/fleet.py), in-process: after a
replica fails to start, the next start waits 0.5 s, then 1 s, 2 s, ... up to 30 s; a request
that finds the function in its backoff fails at once with the reason (a 503 from the
activator); after the backoff a request tries again; a start that succeeds resets it.

The fleet's clock is a fake that moves only when a test says so, so a 30 s backoff takes no
time; the factory fails or succeeds as the test asks and starts no process."""

from __future__ import annotations

import asyncio
import time
import types
from typing import Any

import pytest

from lepton.spec import FunctionSpec
from lepton_platform import fleet as fleet_module
from lepton_platform.activator import acquire
from lepton_platform.asgi import Refusal
from lepton_platform.catalog import Revision
from lepton_platform.fleet import MAX_RESTART_DELAY, Fleet, StartFailed
from lepton_platform.metrics import PlatformMetrics
from lepton_platform.replicas import DEAD, READY, STARTING, ReplicaFailed
from lepton_platform.starts import StartSlots

FAILED = "replica fn-00001-r exited with status 1 before it was ready:\nImportError: no module named 'torchh'"


class Clock:
    """Stands in for the `time` module in fleet.py: frozen until `advance`."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Started:
    """A replica that becomes ready as soon as it is asked to."""

    def __init__(self) -> None:
        self.id, self.state, self.in_flight, self.ready_after, self.exit_status = "r1", STARTING, 0, None, None
        self.exited = asyncio.Event()

    def crash(self) -> None:
        self.state, self.exit_status = DEAD, 1
        self.exited.set()

    async def wait_ready(self, timeout: float) -> None:
        self.state = READY

    def acquire(self) -> None:
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def stop(self, grace: float = 0) -> None:
        self.state = DEAD
        self.exited.set()

    async def close_clients(self) -> None:
        pass


class Factory:
    """Each start fails with FAILED, unless `succeed` is set."""

    def __init__(self) -> None:
        self.starts = StartSlots(2)
        self.gpus = types.SimpleNamespace(fits=lambda count: True)
        self.calls = 0
        self.succeed = False
        self.started: list[Started] = []

    async def start(self, revision: Revision) -> Started:
        self.calls += 1
        await asyncio.sleep(0)  # a start takes a moment: requests may arrive meanwhile
        if not self.succeed:
            raise ReplicaFailed(FAILED)
        self.started.append(Started())
        return self.started[-1]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(fleet_module, "time", fake)
    return fake


class Passes:
    """Metrics stand-in: counts the reconcile loop's passes (each ends by observing the fleet)."""

    def __init__(self) -> None:
        self.count = 0

    def observe_fleet(self, fleet: Fleet) -> None:
        self.count += 1

    def replica_ready(self, function: str, replica: Any) -> None:
        pass


def new_fleet() -> tuple[Fleet, Factory]:
    spec = FunctionSpec(name="fn", concurrency=1, max_scale=1)
    revision = Revision("fn-00001", "fn", 1, "c", "sha256:x", spec, time.time(), "ready")
    factory = Factory()
    return Fleet(revision, factory, metrics=Passes()), factory  # type: ignore[arg-type]


async def request(serving: Fleet) -> str:
    """What one request gets: 'served', or the StartFailed message (bounded: never a hang)."""
    try:
        async with asyncio.timeout(5):
            replica, _ = await serving.acquire(timeout=5)
    except StartFailed as exc:
        return str(exc)
    serving.release(replica)
    return "served"


async def fail_once(serving: Fleet, factory: Factory) -> None:
    calls = factory.calls
    assert await request(serving) == FAILED
    assert factory.calls == calls + 1, "the request made a start, which failed"


def test_a_failed_start_fails_the_waiting_request_with_the_reason(clock):
    async def scenario() -> tuple[str, int, dict]:
        serving, factory = new_fleet()
        answer = await request(serving)
        status = serving.status()
        await serving.close()
        return answer, factory.calls, status

    answer, calls, status = asyncio.run(scenario())
    assert answer == FAILED and calls == 1
    assert (status["queued"], status["in_flight"]) == (0, 0)


def test_requests_during_the_backoff_fail_fast_without_a_new_start(clock):
    async def scenario() -> tuple[list[str], int, dict]:
        serving, factory = new_fleet()
        await fail_once(serving, factory)
        answers = []
        for _ in range(3):
            clock.advance(0.15)  # 0.45 s of the 0.5 s backoff, in steps
            answers.append(await request(serving))
        passes = serving.metrics.count
        async with asyncio.timeout(5):  # the reconcile loop looks again (every 0.1 s) and starts nothing either
            while serving.metrics.count < passes + 3:
                await asyncio.sleep(0.01)
        status = serving.status()
        await serving.close()
        return answers, factory.calls, status

    answers, calls, status = asyncio.run(scenario())
    assert answers == [FAILED] * 3
    assert calls == 1, "no start was made during the backoff, by a request or by the reconcile loop"
    assert status["queued"] == 0, "refused at once, not queued"


def test_the_activator_answers_503_with_the_reason_during_the_backoff(clock):
    async def scenario() -> Any:
        serving, factory = new_fleet()
        await fail_once(serving, factory)
        refused = await asyncio.wait_for(acquire(serving, PlatformMetrics()), 1)
        await serving.close()
        return refused

    assert asyncio.run(scenario()) == Refusal(503, f"function 'fn' cannot start: {FAILED}")


def test_after_the_backoff_a_request_tries_again(clock):
    async def scenario() -> tuple[str, int]:
        serving, factory = new_fleet()
        await fail_once(serving, factory)
        clock.advance(0.51)
        factory.succeed = True
        answer = await request(serving)
        await serving.close()
        return answer, factory.calls

    assert asyncio.run(scenario()) == ("served", 2)


def test_the_backoff_doubles_after_each_failure_up_to_30_seconds(clock):
    expected = [0.5, 1, 2, 4, 8, 16, MAX_RESTART_DELAY, MAX_RESTART_DELAY]

    async def scenario() -> list[tuple[float, int, int]]:
        serving, factory = new_fleet()
        await fail_once(serving, factory)
        seen = []
        for delay in expected:
            calls = factory.calls
            clock.advance(delay - 0.01)
            assert await request(serving) == FAILED
            during = factory.calls - calls  # 0: refused without a start
            clock.advance(0.02)
            assert await request(serving) == FAILED
            after = factory.calls - calls  # 1: this request made the next start
            seen.append((delay, during, after))
        await serving.close()
        return seen

    assert asyncio.run(scenario()) == [(delay, 0, 1) for delay in expected]


def test_a_successful_start_resets_the_backoff(clock):
    async def scenario() -> tuple[str, str, int]:
        serving, factory = new_fleet()
        for delay in (0, 0.51, 1.01):  # three failures in a row: the backoff is now 2 s
            clock.advance(delay)
            await fail_once(serving, factory)
        clock.advance(2.01)
        factory.succeed = True
        served = await request(serving)
        replica = factory.started[-1]
        factory.succeed = False
        calls = factory.calls
        replica.crash()  # the fleet replaces it at once, and that start fails: the first failure since
        async with asyncio.timeout(5):  # the success...
            while factory.calls == calls or serving.failure is None:
                await asyncio.sleep(0.001)
        clock.advance(0.51)  # ... is followed by 0.5 s, not 4 s
        calls = factory.calls
        again = await request(serving)
        await serving.close()
        return served, again, factory.calls - calls

    assert asyncio.run(scenario()) == ("served", FAILED, 1)
