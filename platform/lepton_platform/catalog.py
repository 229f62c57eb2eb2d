"""Durable platform state in SQLite: functions, their immutable revisions, and routing.

A revision is content-addressed: the same artifact digest and spec give the same revision,
which is how redeploying identical code becomes a no-op.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.spec import FunctionSpec
from lepton_platform.database import Database
from lepton_platform.traffic import Traffic

SCHEMA = """
CREATE TABLE IF NOT EXISTS revisions (
    id          TEXT PRIMARY KEY,
    function    TEXT NOT NULL,
    number      INTEGER NOT NULL,
    content     TEXT NOT NULL,
    digest      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  REAL NOT NULL,
    status      TEXT NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    image       TEXT NOT NULL DEFAULT '',
    backend_ref TEXT NOT NULL DEFAULT '',
    UNIQUE (function, number)
);
CREATE TABLE IF NOT EXISTS functions (
    name        TEXT PRIMARY KEY,
    revision    TEXT REFERENCES revisions(id),
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    traffic     TEXT NOT NULL DEFAULT ''
);
"""
# Columns added after the first release, for state databases created before them.
ADDED_COLUMNS = {
    "revisions": {"image": "TEXT NOT NULL DEFAULT ''", "backend_ref": "TEXT NOT NULL DEFAULT ''"},
    "functions": {"traffic": "TEXT NOT NULL DEFAULT ''"},
}
ADDED_OPTIONS = ("max_queue",)  # FunctionSpec fields newer than the content ids of deployed revisions


@dataclass(frozen=True)
class Revision:
    id: str
    function: str
    number: int
    content: str
    digest: str
    spec: FunctionSpec
    created_at: float
    status: str
    message: str = ""
    image: str = ""  # the container image it runs in on Knative ('' = the platform's default)
    backend_ref: str = ""  # the backend's own name for it (the Knative Revision's name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "number": self.number,
            "digest": self.digest,
            "created_at": self.created_at,
            "status": self.status,
            "message": self.message,
            "image": self.image or None,
            "backend_ref": self.backend_ref or None,
        }


def content_id(digest: str, spec: FunctionSpec, image: str = "") -> str:
    """What makes two revisions the same: the artifact bytes, the function's spec and, on
    Knative, the image it runs in."""
    # Options added after the first release count only when set, so that an upgrade does not
    # make every deployed revision look changed.
    unset = {name for name in ADDED_OPTIONS if getattr(spec, name) is None}
    text = digest + "\n" + spec.model_dump_json(exclude=unset) + ("\n" + image if image else "")
    return hashlib.sha256(text.encode()).hexdigest()


class Catalog:
    """Thread-safe access to the state database (WAL, so readers never wait for a writer)."""

    def __init__(self, path: Path) -> None:
        self._db = Database(path, SCHEMA)
        self._rows = self._db.rows
        for table, columns in ADDED_COLUMNS.items():
            present = {row["name"] for row in self._rows(f"PRAGMA table_info({table})")}
            for column, kind in columns.items():
                if column not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self._db.close()

    def find_revision(self, function: str, content: str) -> Revision | None:
        rows = self._rows("SELECT * FROM revisions WHERE function = ? AND content = ? ORDER BY number DESC LIMIT 1", function, content)
        return _revision(rows[0]) if rows else None

    def create_revision(self, spec: FunctionSpec, digest: str, image: str = "") -> Revision:
        content = content_id(digest, spec, image)
        now = time.time()
        with self._db.transaction() as db:
            (number,) = db.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE function = ?", (spec.name,)).fetchone()
            rev_id = f"{spec.name}-{number:05d}"
            db.execute(
                "INSERT INTO revisions (id, function, number, content, digest, spec, created_at, status, image) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'deploying', ?)",
                (rev_id, spec.name, number, content, digest, spec.model_dump_json(), now, image),
            )
        return Revision(rev_id, spec.name, number, content, digest, spec, now, "deploying", image=image)

    def set_revision_status(self, rev_id: str, status: str, message: str = "") -> None:
        self._db.execute("UPDATE revisions SET status = ?, message = ? WHERE id = ?", status, message, rev_id)

    def set_backend_ref(self, rev_id: str, ref: str) -> None:
        self._db.execute("UPDATE revisions SET backend_ref = ? WHERE id = ?", ref, rev_id)

    def route(self, function: str, traffic: Traffic) -> None:
        """Record who takes the function's traffic (creating the function if new); `revision`
        is the main one, the rest is in `traffic`."""
        now = time.time()
        self._db.execute(
            "INSERT INTO functions (name, revision, created_at, updated_at, traffic) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET revision = excluded.revision, updated_at = excluded.updated_at, "
            "traffic = excluded.traffic",
            function,
            traffic.main,
            now,
            now,
            "" if traffic.simple else json.dumps(traffic.to_json()),
        )

    def revision(self, rev_id: str) -> Revision | None:
        rows = self._rows("SELECT * FROM revisions WHERE id = ?", rev_id)
        return _revision(rows[0]) if rows else None

    def revisions(self, function: str, *, limit: int = -1, after: int = 0) -> list[Revision]:
        """The function's revisions numbered above `after`, oldest first (all by default)."""
        rows = self._rows("SELECT * FROM revisions WHERE function = ? AND number > ? ORDER BY number LIMIT ?", function, after, limit)
        return [_revision(r) for r in rows]

    def routed(self) -> Iterator[tuple[str, Revision, Traffic]]:
        """Every function with its main revision and its traffic rule."""
        rows = self._rows("SELECT f.name, f.traffic, r.* FROM functions f JOIN revisions r ON r.id = f.revision ORDER BY f.name")
        for row in rows:
            yield row["name"], _revision(row), Traffic.from_json(json.loads(row["traffic"] or "{}"), row["id"])

    def delete_function(self, function: str) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM functions WHERE name = ?", (function,))
            db.execute("DELETE FROM revisions WHERE function = ?", (function,))

    def digests_in_use(self) -> set[str]:
        return {r["digest"] for r in self._rows("SELECT DISTINCT digest FROM revisions")}


def _revision(row: sqlite3.Row) -> Revision:
    return Revision(
        row["id"],
        row["function"],
        row["number"],
        row["content"],
        row["digest"],
        FunctionSpec.model_validate(json.loads(row["spec"])),
        row["created_at"],
        row["status"],
        row["message"],
        row["image"],
        row["backend_ref"],
    )
