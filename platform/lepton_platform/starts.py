"""How many replicas may be starting at once across the platform (`limits.max_starting`,
about the number of cores by default).

A deploy of a thousand functions proves them a few at a time instead of forking a thousand
processes at once, and each slot is free again as soon as its replica's readiness check
passes. Starts wait in three queues, served in order: the first replica of a function that
requests are waiting for (nothing else can serve them), then more replicas for functions
under load, then the replicas a deploy is proving, so that a large deploy does not stall the
functions that are serving, and a burst over many functions at zero wakes each of them
before any gets its second replica.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

FIRST, MORE, DEPLOY = 0, 1, 2  # priorities, highest first
HOLD = 5.0


def default_limit() -> int:
    return max(2, len(os.sched_getaffinity(0)))


class StartSlots:
    def __init__(self, limit: int | None = None, hold: float = HOLD) -> None:
        self.limit = limit or default_limit()
        self.hold = hold
        self.starting = 0
        self.peak = 0  # the most ever starting at once, for /healthz
        self._queues: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque(), deque())

    @asynccontextmanager
    async def slot(self, priority: int) -> AsyncIterator[None]:
        """Hold one slot while a replica starts: FIRST, MORE or DEPLOY. A replica whose
        `setup()` takes longer than `hold` seconds (a model fetched over the network, or a
        call to another function at zero) gives its slot back then, so slow setups cannot
        hold up every other start."""
        await self._take(priority)
        held = True

        def give_back() -> None:
            nonlocal held
            if held:
                held = False
                self._release()

        timer = asyncio.get_running_loop().call_later(self.hold, give_back)
        try:
            yield
        finally:
            timer.cancel()
            give_back()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues)

    async def _take(self, priority: int) -> None:
        if self.starting < self.limit and not self.waiting:
            self._count_one()
            return
        queue = self._queues[priority]
        waiter = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted just as it was cancelled
                self._release()
            elif waiter in queue:
                queue.remove(waiter)
            raise

    def _release(self) -> None:
        self.starting -= 1
        self._grant()

    def _grant(self) -> None:
        for queue in self._queues:
            while queue and self.starting < self.limit:
                waiter = queue.popleft()
                if not waiter.done():
                    self._count_one()
                    waiter.set_result(None)

    def _count_one(self) -> None:
        self.starting += 1
        self.peak = max(self.peak, self.starting)
