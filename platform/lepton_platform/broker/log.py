"""The broker's durable state in SQLite (WAL, fsync at every commit): accepted events, the
deliveries still owed to each trigger, dead letters, triggers and cron progress.

An event and the deliveries it owes are written in one transaction, so once an ingest call
returns, every matching trigger will get the event even if the platform is killed right after.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lepton_platform.broker.index import TriggerIndex
from lepton_platform.broker.triggers import Trigger
from lepton_platform.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    source    TEXT NOT NULL,
    id        TEXT NOT NULL,
    body      BLOB NOT NULL,
    received  REAL NOT NULL,
    UNIQUE (source, id)
);
CREATE TABLE IF NOT EXISTS deliveries (
    trigger   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    attempts  INTEGER NOT NULL DEFAULT 0,
    due       REAL NOT NULL,
    error     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (trigger, seq)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (trigger, due);
CREATE TABLE IF NOT EXISTS dead_letters (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    trigger   TEXT NOT NULL,
    function  TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    code      INTEGER NOT NULL,
    message   TEXT NOT NULL,
    attempts  INTEGER NOT NULL,
    at        REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS triggers (
    id        TEXT PRIMARY KEY,
    owner     TEXT NOT NULL,
    origin    TEXT NOT NULL,
    spec      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cron (
    trigger   TEXT PRIMARY KEY,
    last      REAL NOT NULL
);
"""


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Event:
    """An event as the broker keeps it: its attributes as text (for filters) and its
    structured-mode JSON (what is stored and sent)."""

    source: str
    id: str
    attrs: Mapping[str, str]
    body: bytes

    @classmethod
    def from_cloudevent(cls, event: Any) -> Event:
        from lepton.runtime.events import FORMAT

        attrs = {k: _text(v) for k, v in event.get_attributes().items() if v is not None}
        return cls(attrs["source"], attrs["id"], attrs, FORMAT.write(event))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        attrs = {k: _text(v) for k, v in data.items() if k not in ("data", "data_base64") and v is not None}
        return cls(attrs["source"], attrs["id"], attrs, json.dumps(data).encode())


@dataclass(frozen=True)
class Due:
    seq: int
    attempts: int
    body: bytes


class EventLog:
    def __init__(self, path: Path) -> None:
        self.database = Database(path, SCHEMA, synchronous="FULL")

    def close(self) -> None:
        self.database.close()

    # -- triggers ---------------------------------------------------------------------------

    def triggers(self) -> list[Trigger]:
        return [Trigger.from_json(json.loads(r["spec"])) for r in self.database.rows("SELECT spec FROM triggers ORDER BY id")]

    def replace_triggers(self, owner: str, origins: Iterable[str], triggers: list[Trigger]) -> list[str]:
        """Make `triggers` the owner's triggers of those origins; deliveries owed to the ones
        that go away are dropped with them. Returns the ids that went away."""
        origins = tuple(origins)
        keep = {t.id for t in triggers}
        marks = ",".join("?" * len(origins))
        with self.database.transaction() as db:
            old = [r["id"] for r in db.execute(f"SELECT id FROM triggers WHERE owner = ? AND origin IN ({marks})", (owner, *origins))]
            gone = [tid for tid in old if tid not in keep]
            self._delete(db, gone)
            for trig in triggers:
                db.execute(
                    "INSERT OR REPLACE INTO triggers (id, owner, origin, spec) VALUES (?, ?, ?, ?)",
                    (trig.id, trig.declared_by, trig.origin, json.dumps(trig.to_json())),
                )
        return gone

    def delete_triggers(self, ids: list[str]) -> None:
        with self.database.transaction() as db:
            self._delete(db, ids)

    @staticmethod
    def _delete(db: Any, ids: list[str]) -> None:
        for tid in ids:
            for table, column in (("triggers", "id"), ("deliveries", "trigger"), ("cron", "trigger")):
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", (tid,))

    # -- ingest -----------------------------------------------------------------------------

    @staticmethod
    def write(
        db: sqlite3.Connection, batch: list[tuple[Event, str | None, float | None]], index: TriggerIndex
    ) -> tuple[list[bool], list[tuple[str, Due]]]:
        """Store events, in the caller's transaction, with the deliveries they owe: to `target`
        when given (cron ticks), else to every matching trigger. Returns which events were new
        (not a duplicate source+id) and the deliveries now owed."""
        now = time.time()
        fresh: list[bool] = []
        owed: list[tuple[str, Due]] = []
        for event, target, tick in batch:
            cursor = db.execute(
                "INSERT OR IGNORE INTO events (source, id, body, received) VALUES (?, ?, ?, ?)", (event.source, event.id, event.body, now)
            )
            fresh.append(cursor.rowcount == 1)
            if tick is not None and target is not None:
                db.execute("INSERT OR REPLACE INTO cron (trigger, last) VALUES (?, ?)", (target, tick))
            if cursor.rowcount != 1:
                continue
            seq = cursor.lastrowid
            assert seq is not None  # the INSERT stored a row
            targets = [target] if target else index.matching(event.attrs)
            for tid in targets:
                db.execute("INSERT INTO deliveries (trigger, seq, due) VALUES (?, ?, ?)", (tid, seq, now))
                owed.append((tid, Due(seq, 0, event.body)))
        return fresh, owed

    # -- delivery ---------------------------------------------------------------------------

    def due(self, trigger_id: str, limit: int) -> list[Due]:
        rows = self.database.rows(
            "SELECT d.seq, d.attempts, e.body FROM deliveries d JOIN events e ON e.seq = d.seq "
            "WHERE d.trigger = ? AND d.due <= ? ORDER BY d.due, d.seq LIMIT ?",
            trigger_id,
            time.time(),
            limit,
        )
        return [Due(r["seq"], r["attempts"], r["body"]) for r in rows]

    def next_due(self, trigger_id: str, after: float = 0.0) -> float | None:
        """When the trigger's first delivery due after `after` is."""
        rows = self.database.rows("SELECT MIN(due) AS due FROM deliveries WHERE trigger = ? AND due > ?", trigger_id, after)
        due: float | None = rows[0]["due"]
        return due

    def ack(self, trigger_id: str, seqs: list[int]) -> None:
        with self.database.transaction() as db:
            db.executemany("DELETE FROM deliveries WHERE trigger = ? AND seq = ?", [(trigger_id, s) for s in seqs])

    def retry_at(self, trigger_id: str, seq: int, attempts: int, due: float, error: str) -> None:
        self.database.execute(
            "UPDATE deliveries SET attempts = ?, due = ?, error = ? WHERE trigger = ? AND seq = ?", attempts, due, error, trigger_id, seq
        )

    def dead_letter(self, trigger: Trigger, seq: int, attempts: int, code: int, message: str, companion: str | None) -> None:
        """Move a delivery that ran out of attempts to the dead letters (and the dead-letter
        function's queue), in one transaction."""
        now = time.time()
        with self.database.transaction() as db:
            db.execute("DELETE FROM deliveries WHERE trigger = ? AND seq = ?", (trigger.id, seq))
            db.execute(
                "INSERT INTO dead_letters (trigger, function, seq, code, message, attempts, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (trigger.id, trigger.function, seq, code, message, attempts, now),
            )
            if companion:
                db.execute(
                    "INSERT OR IGNORE INTO deliveries (trigger, seq, due, error) VALUES (?, ?, ?, ?)",
                    (companion, seq, now, json.dumps({"code": code, "message": message, "trigger": trigger.id})),
                )

    def dead_letter_error(self, trigger_id: str, seq: int) -> dict[str, Any]:
        rows = self.database.rows("SELECT error FROM deliveries WHERE trigger = ? AND seq = ?", trigger_id, seq)
        return json.loads(rows[0]["error"]) if rows and rows[0]["error"] else {}

    def dead_letters(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """Newest first; with `before`, those older than that dead letter."""
        rows = self.database.rows(
            "SELECT l.*, e.body FROM dead_letters l JOIN events e ON e.seq = l.seq WHERE l.id < ? ORDER BY l.id DESC LIMIT ?",
            before if before is not None else 2**63 - 1,
            limit,
        )
        return [
            {
                "id": r["id"],
                "trigger": r["trigger"],
                "function": r["function"],
                "code": r["code"],
                "message": r["message"],
                "attempts": r["attempts"],
                "at": r["at"],
                "event": json.loads(r["body"]),
            }
            for r in rows
        ]

    def redeliver(self, letter_id: int) -> str | None:
        """Queue a dead letter for its trigger again; returns the trigger, or None if unknown."""
        with self.database.transaction() as db:
            row = db.execute("SELECT trigger, seq FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
            db.execute("INSERT OR REPLACE INTO deliveries (trigger, seq, due) VALUES (?, ?, ?)", (row["trigger"], row["seq"], time.time()))
        trigger: str = row["trigger"]
        return trigger

    # -- bookkeeping ------------------------------------------------------------------------

    def backlog(self) -> dict[str, tuple[int, float]]:
        """Per trigger: deliveries owed, and the age in seconds of the oldest one's event."""
        rows = self.database.rows(
            "SELECT d.trigger, COUNT(*) AS n, MIN(e.received) AS oldest FROM deliveries d JOIN events e ON e.seq = d.seq GROUP BY d.trigger"
        )
        now = time.time()
        return {r["trigger"]: (r["n"], now - r["oldest"]) for r in rows}

    def cron_last(self, trigger_id: str) -> float | None:
        rows = self.database.rows("SELECT last FROM cron WHERE trigger = ?", trigger_id)
        return rows[0]["last"] if rows else None

    def forget_old(self, retention: float) -> int:
        """Drop events past the dedup window that nothing refers to any more."""
        return self.database.execute(
            "DELETE FROM events WHERE received < ? AND seq NOT IN (SELECT seq FROM deliveries) "
            "AND seq NOT IN (SELECT seq FROM dead_letters)",
            time.time() - retention,
        )
