"""The activator's queue in a fleet, in-process: a freed slot goes to the request that has
waited longest, never to one that arrives at that moment; a full queue refuses at once; a
request that gives up leaves neither its place nor a slot behind. The replicas stand in for
processes (ready, with a slot count) and the factory starts none. Also the platform's start
slots: their order and what a start that gives up or runs long leaves behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from lepton.spec import FunctionSpec
from lepton_platform.catalog import Revision
from lepton_platform.fleet import Fleet, Overloaded
from lepton_platform.replicas import READY, NoCapacity
from lepton_platform.starts import DEPLOY, FIRST, MORE, StartSlots


class ReadyReplica:
    def __init__(self, name: str) -> None:
        self.id, self.state, self.in_flight = name, READY, 0

    def acquire(self) -> None:
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1

    async def stop(self, grace: float) -> None:
        self.state = "dead"


class NoStarts:
    """A factory with no room: the fleet's loop may try, and never gets a process."""

    starts = StartSlots(2)

    class gpus:
        @staticmethod
        def fits(count: int) -> bool:
            return True

    async def start(self, revision: Revision) -> None:
        raise NoCapacity("none in this test")


def fleet(**options: object) -> tuple[Fleet, ReadyReplica]:
    spec = FunctionSpec(name="fn", concurrency=1, max_scale=1, **options)
    revision = Revision("fn-00001", "fn", 1, "c", "sha256:x", spec, time.time(), "ready")
    serving = Fleet(revision, NoStarts(), queue_limit=3)  # type: ignore[arg-type]
    replica = ReadyReplica("r1")
    serving.replicas.append(replica)  # type: ignore[arg-type]
    return serving, replica


def test_a_freed_slot_goes_to_the_longest_waiting_request_not_to_a_new_one():
    async def scenario() -> list[str]:
        serving, replica = fleet()
        first, _ = await serving.acquire(timeout=5)
        served: list[str] = []

        async def wait(label: str) -> None:
            got, cold = await serving.acquire(timeout=5)
            served.append(label)
            assert got is replica and cold is False
            serving.release(got)

        waiters = [asyncio.create_task(wait(label)) for label in "abc"]
        await asyncio.sleep(0.01)
        assert serving.status()["queued"] == 3
        serving.release(first)
        assert serving.try_acquire() is None, "a new arrival does not jump the queue"
        await asyncio.gather(*waiters)
        await serving.close()
        return served

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_full_queue_refuses_at_once_with_the_function_limit_before_the_platform_default():
    async def scenario(**options: object) -> tuple[int, str]:
        serving, _ = fleet(**options)
        await serving.acquire(timeout=5)
        waiting = []
        with pytest.raises(Overloaded) as refused:
            while True:
                task = asyncio.create_task(serving.acquire(timeout=5))
                waiting.append(task)
                await asyncio.sleep(0)
                if task.done():
                    task.result()
        await serving.close()
        await asyncio.gather(*waiting, return_exceptions=True)
        return len(waiting) - 1, str(refused.value)

    assert asyncio.run(scenario()) == (3, "function 'fn' has 3 requests waiting for a replica, its limit (max_queue=3); try again shortly")
    assert asyncio.run(scenario(max_queue=1))[0] == 1


def test_a_request_that_gives_up_leaves_no_place_and_no_slot_behind():
    async def scenario() -> None:
        serving, replica = fleet()
        first, _ = await serving.acquire(timeout=5)
        with pytest.raises(TimeoutError):
            await serving.acquire(timeout=0.05)
        assert serving.status()["queued"] == 0 and serving.status()["in_flight"] == 1
        patient = asyncio.create_task(serving.acquire(timeout=5))
        impatient = asyncio.create_task(serving.acquire(timeout=5))
        await asyncio.sleep(0.01)
        impatient.cancel()
        serving.release(first)
        got, _ = await patient
        assert got is replica and replica.in_flight == 1
        serving.release(got)
        assert replica.in_flight == 0 and serving.status()["in_flight"] == 0
        await serving.close()

    asyncio.run(scenario())


def test_the_last_waiters_are_told_when_the_function_is_removed():
    async def scenario() -> str:
        serving, _ = fleet()
        await serving.acquire(timeout=5)
        waiter = asyncio.create_task(serving.acquire(timeout=5))
        await asyncio.sleep(0.01)
        await serving.close()
        with pytest.raises(Exception) as ended:
            await waiter
        return str(ended.value)

    assert asyncio.run(scenario()) == "function 'fn' was removed"


def test_start_slots_go_to_first_replicas_then_more_then_deploys_and_none_leak():
    async def scenario() -> tuple[list[str], int]:
        slots = StartSlots(1)
        order: list[str] = []
        holder = asyncio.Event()

        async def start(label: str, priority: int) -> None:
            async with slots.slot(priority):
                order.append(label)
                await asyncio.sleep(0)

        async def hold() -> None:
            async with slots.slot(FIRST):
                await holder.wait()

        first = asyncio.create_task(hold())
        await asyncio.sleep(0)
        tasks = [
            asyncio.create_task(start(label, priority))
            for label, priority in (("deploy", DEPLOY), ("more", MORE), ("gone", FIRST), ("first", FIRST))
        ]
        await asyncio.sleep(0)
        tasks[2].cancel()  # gave up while it waited
        holder.set()
        await asyncio.gather(first, *tasks, return_exceptions=True)
        return order, slots.starting

    assert asyncio.run(scenario()) == (["first", "more", "deploy"], 0)


def test_a_start_that_takes_longer_than_the_hold_gives_its_slot_back():
    async def scenario() -> tuple[bool, int, int]:
        slots = StartSlots(1, hold=0.05)
        slow_done = asyncio.Event()

        async def slow() -> None:
            async with slots.slot(DEPLOY):
                await slow_done.wait()

        slow_task = asyncio.create_task(slow())
        await asyncio.sleep(0)
        async with asyncio.timeout(5):
            async with slots.slot(FIRST):  # granted once the slow one has held its slot 0.05 s
                granted = True
                during = slots.starting
        slow_done.set()
        await slow_task
        return granted, during, slots.starting

    assert asyncio.run(scenario()) == (True, 1, 0)
