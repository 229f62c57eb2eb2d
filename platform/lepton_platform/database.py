"""SQLite the way every platform database uses it: WAL (readers never wait for the writer),
one connection shared by threads behind a lock, explicit immediate transactions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class Database:
    def __init__(self, path: Path, schema: str, *, synchronous: str = "NORMAL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives the process being killed; only power loss can
        # take the last transactions back. FULL also fsyncs the log at every commit.
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(schema)
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    def execute(self, sql: str, *args: Any) -> int:
        """One statement in its own transaction; returns the number of rows it changed."""
        with self.lock:
            return self.db.execute(sql, args).rowcount

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")


class GroupCommit:
    """Many coroutines' writes, one transaction: callers queue a function of the connection;
    one writer runs everything queued so far in a single transaction (one fsync under
    `synchronous=FULL`) and answers all those callers at once. Each function runs in its own
    savepoint, so one that raises fails alone. At low rates a lone write commits at once."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queue: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._queued = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._writer(), name=f"commit-{self.database.path.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """`write(db)`'s result once its transaction has committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        self._queued.set()
        return await future

    async def _writer(self) -> None:
        while True:
            await self._queued.wait()
            self._queued.clear()
            queued, self._queue = self._queue, []
            try:
                outcomes = await asyncio.to_thread(self._commit, [write for write, _ in queued])
            except Exception as exc:  # the commit itself failed: nobody's write is stored
                outcomes = [(None, exc)] * len(queued)
            for (_, future), (result, error) in zip(queued, outcomes):
                if future.done():
                    continue
                if error is None:
                    future.set_result(result)
                else:
                    future.set_exception(error)

    def _commit(self, writes: list[Callable[[sqlite3.Connection], Any]]) -> list[tuple[Any, BaseException | None]]:
        outcomes: list[tuple[Any, BaseException | None]] = []
        with self.database.transaction() as db:
            for write in writes:
                db.execute("SAVEPOINT one")
                try:
                    outcomes.append((write(db), None))
                except Exception as exc:
                    db.execute("ROLLBACK TO one")
                    outcomes.append((None, exc))
                db.execute("RELEASE one")
        return outcomes
