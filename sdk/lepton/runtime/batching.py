"""Groups concurrent single-item requests into one handler call.

A batch is flushed when it reaches `max_size` or `max_wait_ms` after its first item arrived.
If the handler raises for a whole batch of several items, each item is retried alone, so one
bad input fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

# Calls the handler with a batch; what it returns is checked to be a list (or tuple) of one
# result per item.
RunBatch = Callable[[list[Any]], Awaitable[Any]]


class BatchSizeMismatch(RuntimeError):
    pass


class Batcher:
    def __init__(self, run: RunBatch, max_size: int, max_wait_ms: float, on_batch: Callable[[int], None] | None = None) -> None:
        self._run = run
        self._max_size = max_size
        self._max_wait = max_wait_ms / 1000
        self._on_batch = on_batch
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._max_wait, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            batch, self._pending = self._pending[: self._max_size], self._pending[self._max_size :]
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, batch: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        if self._on_batch:
            self._on_batch(len(items))
        try:
            results = await self._run(items)
            if not isinstance(results, (list, tuple)) or len(results) != len(items):
                got = len(results) if isinstance(results, (list, tuple)) else type(results).__name__
                raise BatchSizeMismatch(f"batch handler returned {got} results for {len(items)} inputs")
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, BatchSizeMismatch):
                for _, future in batch:
                    _settle(future, exc)
                return
            await asyncio.gather(*(self._execute([entry]) for entry in batch))
            return
        for (_, future), result in zip(batch, results):
            _settle(future, result)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
