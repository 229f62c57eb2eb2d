"""Events the platform produced itself (bucket object events), kept durably until the broker
takes them. A store writes its outbox row in the same transaction as the change it reports,
so an event is never lost and never announces a change that did not happen.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from lepton_platform.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    event  TEXT NOT NULL
);
"""

CREATED = "dev.lepton.bucket.object.created"
DELETED = "dev.lepton.bucket.object.deleted"


def bucket_event(
    kind: str, bucket: str, key: str, data: dict[str, Any], *, event_id: str | None = None, when: float | None = None
) -> dict[str, Any]:
    """A structured-mode CloudEvent (as JSON) for an object created or deleted in `bucket`."""
    stamp = datetime.fromtimestamp(when if when is not None else time.time(), UTC)
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": f"/buckets/{bucket}",
        "type": kind,
        "subject": key,
        "time": stamp.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": {"bucket": bucket, "key": key, **data},
    }


class Outbox:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.listener: Callable[[], object] | None = None  # the broker, to drain without polling
        database.db.executescript(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The database's transaction; the listener hears of it once it has committed."""
        with self.database.transaction() as db:
            yield db
        if self.listener is not None:
            self.listener()

    @staticmethod
    def add(db: sqlite3.Connection, event: dict[str, Any]) -> None:
        """Queue `event` inside the caller's open transaction on the same database."""
        db.execute("INSERT INTO outbox (event) VALUES (?)", (json.dumps(event),))

    def put(self, events: list[dict[str, Any]]) -> None:
        with self.transaction() as db:
            for event in events:
                self.add(db, event)

    def peek(self, limit: int = 500) -> list[tuple[int, dict[str, Any]]]:
        return [(r["seq"], json.loads(r["event"])) for r in self.database.rows("SELECT seq, event FROM outbox ORDER BY seq LIMIT ?", limit)]

    def remove(self, up_to: int) -> None:
        """Forget events the broker has stored durably (everything up to sequence `up_to`)."""
        self.database.execute("DELETE FROM outbox WHERE seq <= ?", up_to)
