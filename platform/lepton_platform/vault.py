"""Secrets at rest: each value encrypted with AES-GCM in the platform's state database.

The key is 32 bytes: `LEPTON_SECRET_KEY` (base64 or URL-safe base64), else the 0600 file
`$LEPTON_HOME/secret.key`, created on first use. Each value has a fresh 96-bit nonce and is
bound to its name (the associated data), so a row copied under another name does not decrypt.
A value never appears in a message, a log line or an exception raised here.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lepton.errors import LeptonError
from lepton_platform.config import ConfigError
from lepton_platform.database import Database
from lepton_platform.errors import NotFound

KEY_ENV = "LEPTON_SECRET_KEY"
KEY_FILE = "secret.key"
KEY_BYTES = 32
NONCE_BYTES = 12
AAD_PREFIX = b"lepton-secret:v1:"

SCHEMA = """
CREATE TABLE IF NOT EXISTS secrets (
    name        TEXT PRIMARY KEY,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    version     INTEGER NOT NULL
);
"""


class SecretError(LeptonError):
    """A secret cannot be used; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class SecretMissing(SecretError, NotFound):
    status = 404


class SecretUnreadable(SecretError):
    """The stored value does not decrypt with the current key (the key changed)."""


def parse_key(text: str, where: str) -> bytes:
    """32 bytes from base64 or URL-safe base64 text; ConfigError naming `where` otherwise."""
    text = text.strip()
    for altchars in (b"-_", b"+/"):
        try:
            key = base64.b64decode(text.encode("ascii") + b"=" * (-len(text) % 4), altchars, validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(key) == KEY_BYTES:
            return key
    raise ConfigError(
        f"{where} is not a secret key: expected {KEY_BYTES} random bytes in base64 "
        f'(make one with `python -c "import secrets; print(secrets.token_urlsafe({KEY_BYTES}))"`)'
    )


def new_key_text() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class Vault:
    """The platform's secrets, by name. Thread-safe (one shared SQLite connection)."""

    def __init__(self, db_path: Path, home: Path) -> None:
        self.key_path = home / KEY_FILE
        self._key: bytes | None = None
        self._key_lock = threading.Lock()
        self._from_env = bool(os.environ.get(KEY_ENV))
        if self._from_env:
            self._key = parse_key(os.environ[KEY_ENV], KEY_ENV)  # refuse to start with a malformed one
        self._db = Database(db_path, SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def key_source(self) -> str:
        return KEY_ENV if self._from_env else str(self.key_path)

    def _aead(self) -> AESGCM:
        with self._key_lock:
            if self._key is None:
                try:
                    self._key = self._load_or_create_key()
                except ConfigError as exc:
                    raise SecretError(str(exc)) from None
                except OSError as exc:  # the cause says which step failed, and on which path (the key file's, or its folder's)
                    raise SecretError(f"cannot use the key file {self.key_path}: {exc.strerror}") from exc
        return AESGCM(self._key)

    def _load_or_create_key(self) -> bytes:
        """The key file, made the first time a secret is stored: written whole to a private
        temporary file (O_CREAT | O_EXCL, mode 0600), then linked into place, which fails if
        the file exists; so no reader ever sees a partial key, and of two platforms racing to
        create it, both use the one that won."""
        if not self.key_path.exists():
            tmp = self.key_path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(new_key_text() + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.link(tmp, self.key_path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        os.chmod(self.key_path, 0o600)
        return parse_key(self.key_path.read_text(), str(self.key_path))

    def _decrypt(self, name: str, nonce: bytes, ciphertext: bytes) -> str:
        try:
            return self._aead().decrypt(nonce, ciphertext, AAD_PREFIX + name.encode()).decode()
        except (InvalidTag, UnicodeDecodeError):
            raise SecretUnreadable(
                f"secret {name!r} cannot be decrypted with the key in {self.key_source}: the key changed "
                f"since it was set; restore the old key, or set it again (`lepton secret set {name}`)"
            ) from None

    # -- operations --------------------------------------------------------------------------

    def set(self, name: str, value: str) -> bool:
        """Store `value` under `name`; True when it changed (a new secret, or a new value)."""
        aead = self._aead()
        nonce = secrets.token_bytes(NONCE_BYTES)
        ciphertext = aead.encrypt(nonce, value.encode(), AAD_PREFIX + name.encode())
        now = time.time()
        with self._db.transaction() as db:
            row = db.execute("SELECT nonce, ciphertext FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                try:
                    if self._decrypt(name, row["nonce"], row["ciphertext"]) == value:
                        return False
                except SecretUnreadable:
                    pass  # written under another key: the new value replaces it
            db.execute(
                "INSERT INTO secrets (name, nonce, ciphertext, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT(name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, "
                "updated_at = excluded.updated_at, version = version + 1",
                (name, nonce, ciphertext, now, now),
            )
        return True

    def get(self, name: str) -> str:
        rows = self._db.rows("SELECT nonce, ciphertext FROM secrets WHERE name = ?", name)
        if not rows:
            raise SecretMissing(f"secret {name!r} is not set; `lepton secret set {name}` sets it")
        return self._decrypt(name, rows[0]["nonce"], rows[0]["ciphertext"])

    def remove(self, name: str) -> None:
        if not self._db.execute("DELETE FROM secrets WHERE name = ?", name):
            raise SecretMissing(f"secret {name!r} is not set; `lepton secret ls` lists them")

    def info(self, name: str) -> dict[str, Any]:
        """When it was set and changed, never its value."""
        rows = self._db.rows("SELECT name, created_at, updated_at, version FROM secrets WHERE name = ?", name)
        if not rows:
            raise SecretMissing(f"secret {name!r} is not set; `lepton secret ls` lists them")
        return dict(rows[0])

    def list(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.rows("SELECT name, created_at, updated_at, version FROM secrets ORDER BY name")]

    def missing(self, names: Iterable[str]) -> builtins.list[str]:  # `list` here is the method above
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        present = {r["name"] for r in self._db.rows(f"SELECT name FROM secrets WHERE name IN ({marks})", *wanted)}
        return [n for n in wanted if n not in present]

    def values(self, names: Iterable[str]) -> dict[str, str]:
        """name -> value for each of `names`; SecretMissing names every one that is not set."""
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = {r["name"]: r for r in self._db.rows(f"SELECT name, nonce, ciphertext FROM secrets WHERE name IN ({marks})", *wanted)}
        if absent := [n for n in wanted if n not in rows]:
            raise SecretMissing(
                f"secret{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
                f"{'are' if len(absent) > 1 else 'is'} not set; `lepton secret set NAME` sets one"
            )
        return {n: self._decrypt(n, rows[n]["nonce"], rows[n]["ciphertext"]) for n in wanted}
