"""Access keys for callers: `lk_<id>_<secret>`, shown once when created, stored hashed.

A key invokes the private functions it names (every function when it names none) until it
expires or is revoked; under `/v1` it may only send events. `<id>` is public (`lepton keys ls`
shows it, `lepton keys revoke ID` takes it); only the SHA-256 of the whole key is stored.

The table lives in the platform's state database, beside the store's tables, and every key is
also held in memory by its hash, so checking one on the invocation path is a hash, a dict
lookup and a comparison with the clock: no database read, and no write either (when a key
was last used reaches the database at most once a minute, from a thread of its own).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_platform.database import Database

logger = logging.getLogger("lepton.platform")

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_keys (
    id           TEXT PRIMARY KEY,
    hash         TEXT NOT NULL UNIQUE,
    functions    TEXT NOT NULL,
    created_at   REAL NOT NULL,
    expires_at   REAL,
    revoked_at   REAL,
    last_used_at REAL
);
"""

PREFIX = "lk_"
KEY = re.compile(r"^lk_(?P<id>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")
EXPIRY = re.compile(r"^(?P<sign>[+-]?)(?P<number>[0-9]+)(?P<unit>[dhms]?)$")
UNITS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1, "": 86_400}  # a plain number counts days
MAX_EXPIRY = 3_650 * 86_400  # 10 years
LAST_USED_EVERY = 60.0  # seconds between writes of a key's last use


def parse_expiry(text: str) -> float:
    """Seconds a new key stays valid, from '30d', '12h', '45m', '90s' or a plain number of days."""
    match = EXPIRY.match(text.strip().lower())
    if match is None:
        raise ValueError(f"expiry {text!r} is not a duration; use e.g. '30d', '12h', '45m', '90s' or a number of days")
    number = match["number"]
    if len(number) > 15:  # far over the limit (and int() of thousands of digits is refused)
        raise ValueError(f"expiry {text!r} is over the limit of 10 years (3650d)")
    seconds = int(number) * UNITS[match["unit"]]
    if match["sign"] == "-" or seconds == 0:
        raise ValueError(f"expiry {text!r} must be positive; use e.g. '30d', or no expiry for a key that never expires")
    if seconds > MAX_EXPIRY:
        raise ValueError(f"expiry {text!r} is over the limit of 10 years (3650d)")
    return float(seconds)


def hash_key(key: str) -> str:
    # A plain SHA-256, not bcrypt/scrypt/argon2: those are slow on purpose so that guessing a
    # low-entropy password from its hash takes long. A key carries 256 random bits, which no
    # amount of guessing recovers, and a fast hash keeps the check on the invocation path at
    # about a microsecond. The lookup by hash is not constant-time, and need not be: the
    # timing of a dict lookup reveals at most something about a hash, never about a key.
    return hashlib.sha256(key.encode()).hexdigest()


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


@dataclass(slots=True)
class Key:
    id: str
    hash: str
    functions: frozenset[str]  # empty: every function
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None

    def status(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def problem(self, now: float) -> str | None:
        """Why the key no longer works (revoked or expired), or None."""
        if self.revoked_at is not None:
            return f"key {self.id} was revoked at {when(self.revoked_at)}; create a new one with `lepton keys create`"
        if self.expires_at is not None and now >= self.expires_at:
            return f"key {self.id} expired at {when(self.expires_at)}; create a new one with `lepton keys create`"
        return None

    def to_json(self, now: float) -> dict[str, Any]:
        """What `GET /v1/keys` shows: never the hash, never the key."""
        return {
            "id": self.id,
            "functions": sorted(self.functions),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "last_used_at": self.last_used_at,
            "status": self.status(now),
        }


class Keys:
    """The platform's access keys: in SQLite, and indexed in memory by hash."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._db = Database(path, SCHEMA)
        self._clock = clock
        self._by_hash: dict[str, Key] = {}
        self._by_id: dict[str, Key] = {}
        for row in self._db.rows("SELECT * FROM access_keys"):
            key = Key(
                row["id"],
                row["hash"],
                frozenset(json.loads(row["functions"])),
                row["created_at"],
                row["expires_at"],
                row["revoked_at"],
                row["last_used_at"],
            )
            self._by_hash[key.hash] = self._by_id[key.id] = key
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="lepton-keys")

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._db.close()

    def create(self, functions: Iterable[str] = (), expires_in: float | None = None) -> tuple[Key, str]:
        """A new key and its only plain-text copy, which the caller shows once."""
        now = self._clock()
        while True:
            key_id = secrets.token_hex(4)
            if key_id not in self._by_id:
                break
        plain = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = Key(key_id, hash_key(plain), frozenset(functions), now, now + expires_in if expires_in is not None else None)
        self._db.execute(
            "INSERT INTO access_keys (id, hash, functions, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            key.id,
            key.hash,
            json.dumps(sorted(key.functions)),
            key.created_at,
            key.expires_at,
        )
        self._by_hash[key.hash] = self._by_id[key.id] = key
        return key, plain

    def all(self) -> list[Key]:
        every = list(self._by_id.values())  # one C call: a create in another thread cannot interleave
        return sorted(every, key=lambda k: (k.created_at, k.id))

    def get(self, key_id: str) -> Key | None:
        return self._by_id.get(key_id)

    def revoke(self, key_id: str) -> Key | None:
        """Revoke a key (no change if it already is); None if there is no such key."""
        key = self._by_id.get(key_id)
        if key is None or key.revoked_at is not None:
            return key
        now = self._clock()
        self._db.execute("UPDATE access_keys SET revoked_at = ? WHERE id = ?", now, key_id)
        key.revoked_at = now
        return key

    def find(self, plain: str) -> Key | None:
        return self._by_hash.get(hash_key(plain))

    def refusal(self, plain: str, function: str) -> tuple[int, str] | None:
        """None when the key may invoke `function` now, else the status and reason to answer.

        On the invocation path: a hash, a dict lookup and a clock read."""
        key = self._by_hash.get(hash_key(plain))
        if key is None:
            return 403, f"invalid key for function {function!r}"
        now = self._clock()
        problem = key.problem(now)
        if problem is not None:
            return 401, problem  # RFC 6750: an expired or revoked token is 'invalid_token', 401
        if key.functions and function not in key.functions:
            return 403, (f"key {key.id} may not invoke function {function!r}; it may invoke {', '.join(sorted(key.functions))}")
        self.used(key, now)
        return None

    def used(self, key: Key, now: float) -> None:
        """Note a use; the database hears of it at most once a minute per key."""
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
            key.last_used_at = now
            try:
                self._writer.submit(self._write_last_used, key.id, now)
            except RuntimeError:  # closed: the platform is stopping
                pass

    def _write_last_used(self, key_id: str, now: float) -> None:
        try:
            self._db.execute("UPDATE access_keys SET last_used_at = ? WHERE id = ?", now, key_id)
        except Exception:  # only bookkeeping: the key keeps working
            logger.exception("could not record the last use of key %s", key_id)
