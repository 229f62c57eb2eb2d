"""Async jobs in SQLite (WAL, fsync at every commit, like the broker's log): a job is the
request that started it (method, path, headers, body) plus its state, attempts and result.

States: queued -> running -> succeeded | failed | cancelled; a retry puts a running job back
to queued with a later `due`. The request's body is dropped once the job is final.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_platform.database import Database, GroupCommit

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINAL = (SUCCEEDED, FAILED, CANCELLED)
MAX_INTERRUPTIONS = 3  # platform restarts during one job before it fails instead of running again

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    function     TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BLOB,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    interrupted  INTEGER NOT NULL DEFAULT 0,
    due          REAL NOT NULL,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    revision     TEXT,
    status_code  INTEGER,
    content_type TEXT,
    result       BLOB,
    error        TEXT,
    announced    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (state, function, due, seq);
CREATE INDEX IF NOT EXISTS jobs_by_function ON jobs (function, seq);
"""
COLUMNS = (
    "seq, id, function, method, path, headers, state, attempts, max_attempts, interrupted, due, created_at, "
    "started_at, finished_at, revision, status_code, content_type, error"
)


@dataclass
class Job:
    """One job as stored (without its body or result, which are read only when needed)."""

    seq: int
    id: str
    function: str
    method: str
    path: str
    headers: list[tuple[str, str]]
    state: str
    attempts: int
    max_attempts: int
    interrupted: int
    due: float
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    revision: str | None = None
    status_code: int | None = None
    content_type: str | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        values = dict(row)
        values["headers"] = [tuple(h) for h in json.loads(values["headers"])]
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def to_json(self, result: bytes | None = None) -> dict[str, Any]:
        """The job as `/v1/jobs` shows it; with `result` (a succeeded job's body) inline."""
        out: dict[str, Any] = {
            "id": self.id,
            "function": self.function,
            "revision": self.revision,
            "state": self.state,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "next_attempt_at": self.due if self.state == QUEUED and self.attempts else None,
            "status_code": self.status_code,
            "content_type": self.content_type,
            "error": self.error,
        }
        if result is not None:
            decoded = json_result(self.content_type, result)
            if decoded is not _NOT_JSON:
                out["result"] = decoded
            else:
                out["result_base64"] = base64.b64encode(result).decode()
        return out


_NOT_JSON = object()


def json_result(content_type: str | None, body: bytes) -> Any:
    if not (content_type or "").startswith("application/json"):
        return _NOT_JSON
    try:
        return json.loads(body) if body else None
    except ValueError:
        return _NOT_JSON


def new_id() -> str:
    """128 random bits: a job's id is also what lets a caller of a public function read it."""
    return "job-" + secrets.token_hex(16)


class JobStore:
    def __init__(self, path: Path) -> None:
        self.database = Database(path, SCHEMA, synchronous="FULL")
        self.commits = GroupCommit(self.database)

    def close(self) -> None:
        self.database.close()

    # -- writes, through the group commit ----------------------------------------------------
    # Each takes the values it writes when it is called (not when awaited, or when its commit
    # runs): the job may change meanwhile.

    async def add(self, function: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes, max_attempts: int) -> Job:
        now = time.time()
        job = Job(0, new_id(), function, method, path, headers, QUEUED, 0, max_attempts, 0, now, now)

        def write(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO jobs (id, function, method, path, headers, body, state, max_attempts, due, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, function, method, path, json.dumps(headers), body, QUEUED, max_attempts, now, now),
            )
            seq = cursor.lastrowid
            assert seq is not None  # every INSERT sets it
            return seq

        job.seq = await self.commits.run(write)
        return job

    def claim(self, job: Job) -> Coroutine[Any, Any, bool]:
        """Mark a queued job running for its next attempt; False if it is no longer queued
        with the attempts it was read with (cancelled, or already run, meanwhile)."""
        values = (RUNNING, job.started_at, job.id, QUEUED, job.attempts)
        return self.commits.run(
            lambda db: (
                db.execute(
                    "UPDATE jobs SET state = ?, attempts = attempts + 1, started_at = COALESCE(started_at, ?) "
                    "WHERE id = ? AND state = ? AND attempts = ?",
                    values,
                ).rowcount
                == 1
            )
        )

    def retry(self, job: Job) -> Coroutine[Any, Any, bool]:
        """Queue a running job again for its next attempt; False if it is no longer running."""
        values = (QUEUED, job.due, job.attempts, job.status_code, job.error, job.id, RUNNING)
        return self.commits.run(
            lambda db: (
                db.execute(
                    "UPDATE jobs SET state = ?, due = ?, attempts = ?, status_code = ?, error = ? WHERE id = ? AND state = ?", values
                ).rowcount
                == 1
            )
        )

    def finish(self, job: Job, result: bytes | None, *, only_queued: bool = False) -> Coroutine[Any, Any, bool]:
        """Make the job final from queued or running (only queued, if so asked); False if it
        was not in such a state."""
        values = (
            job.state,
            job.finished_at,
            job.attempts,
            job.revision,
            job.status_code,
            job.content_type,
            result,
            job.error,
            job.id,
            QUEUED,
            QUEUED if only_queued else RUNNING,
        )
        return self.commits.run(
            lambda db: (
                db.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, attempts = ?, revision = COALESCE(?, revision), status_code = ?, "
                    "content_type = ?, result = ?, error = ?, body = NULL WHERE id = ? AND state IN (?, ?)",
                    values,
                ).rowcount
                == 1
            )
        )

    async def announced(self, ids: list[str]) -> None:
        await self.commits.run(lambda db: db.executemany("UPDATE jobs SET announced = 1 WHERE id = ?", [(i,) for i in ids]))

    # -- reads -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        rows = self.database.rows(f"SELECT {COLUMNS} FROM jobs WHERE id = ?", job_id)
        return Job.from_row(rows[0]) if rows else None

    def body(self, job_id: str) -> bytes:
        rows = self.database.rows("SELECT body FROM jobs WHERE id = ?", job_id)
        return bytes(rows[0]["body"] or b"") if rows else b""

    def result(self, job_id: str) -> bytes | None:
        rows = self.database.rows("SELECT result FROM jobs WHERE id = ?", job_id)
        return bytes(rows[0]["result"]) if rows and rows[0]["result"] is not None else None

    def page(
        self, *, function: str | None, state: str | None, functions: frozenset[str] | None, limit: int, after: int | None
    ) -> list[Job]:
        """Newest first; `functions` narrows to those a caller may see (None: all)."""
        where: list[str] = ["1 = 1"]
        args: list[str | int] = []
        if function is not None:
            where.append("function = ?")
            args.append(function)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if functions is not None:
            where.append(f"function IN ({','.join('?' * len(functions))})")
            args.extend(sorted(functions))
        if after is not None:
            where.append("seq < ?")
            args.append(after)
        rows = self.database.rows(f"SELECT {COLUMNS} FROM jobs WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?", *args, limit)
        return [Job.from_row(r) for r in rows]

    def waiting(self, now: float) -> list[str]:
        """Functions with queued jobs due by `now`."""
        return [r["function"] for r in self.database.rows("SELECT DISTINCT function FROM jobs WHERE state = ? AND due <= ?", QUEUED, now)]

    def due(self, function: str, limit: int, now: float) -> list[Job]:
        rows = self.database.rows(
            f"SELECT {COLUMNS} FROM jobs WHERE state = ? AND function = ? AND due <= ? ORDER BY due, seq LIMIT ?",
            QUEUED,
            function,
            now,
            limit,
        )
        return [Job.from_row(r) for r in rows]

    def queued_counts(self) -> dict[str, int]:
        return {
            r["function"]: r["n"]
            for r in self.database.rows("SELECT function, COUNT(*) AS n FROM jobs WHERE state = ? GROUP BY function", QUEUED)
        }

    def next_due(self, after: float) -> float | None:
        """When the next queued job that is not due by `after` is due."""
        due: float | None = self.database.rows("SELECT MIN(due) AS due FROM jobs WHERE state = ? AND due > ?", QUEUED, after)[0]["due"]
        return due

    def unannounced(self, result_limit: int, limit: int = 500) -> list[tuple[Job, bytes | None]]:
        """Final jobs whose end the broker has not stored yet, with results up to `result_limit`
        bytes (larger ones do not go into events)."""
        rows = self.database.rows(
            f"SELECT {COLUMNS}, CASE WHEN length(result) <= ? THEN result END AS result FROM jobs "
            "WHERE announced = 0 AND state IN (?, ?, ?) ORDER BY seq LIMIT ?",
            result_limit,
            *FINAL,
            limit,
        )
        return [(Job.from_row(r), r["result"]) for r in rows]

    # -- lifecycle ---------------------------------------------------------------------------

    def recover(self) -> tuple[int, int]:
        """After a restart: jobs that were running run again (the attempt did not finish, so it
        does not count), unless the platform went down during them MAX_INTERRUPTIONS times.
        Returns (queued again, failed)."""
        now = time.time()
        with self.database.transaction() as db:
            failed = db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, body = NULL, interrupted = interrupted + 1, error = ? "
                "WHERE state = ? AND interrupted + 1 >= ?",
                (FAILED, now, f"the platform stopped during this job {MAX_INTERRUPTIONS} times; not run again", RUNNING, MAX_INTERRUPTIONS),
            ).rowcount
            queued = db.execute(
                "UPDATE jobs SET state = ?, due = ?, attempts = MAX(attempts - 1, 0), interrupted = interrupted + 1 WHERE state = ?",
                (QUEUED, now, RUNNING),
            ).rowcount
        return queued, failed

    def forget_finished(self, before: float) -> int:
        return self.database.execute("DELETE FROM jobs WHERE state IN (?, ?, ?) AND finished_at < ? AND announced = 1", *FINAL, before)
