"""SQLite the way every platform database uses it: WAL (readers never wait for the writer),
one connection shared by threads behind a lock, explicit immediate transactions.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


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
