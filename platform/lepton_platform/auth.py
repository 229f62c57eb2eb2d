"""Tokens: the admin token `lepton up` writes (mode 0600) guards /v1 and private functions."""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path


def load_or_create_token(home: Path) -> str:
    """The admin token under $LEPTON_HOME/token, generated on first start."""
    path = home / "token"
    home.mkdir(parents=True, exist_ok=True)
    try:
        token = path.read_text().strip()
        if token:
            os.chmod(path, 0o600)
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def check(expected: str, authorization: str | None) -> int:
    """0 when the header carries the token; else the HTTP status to answer (401 or 403)."""
    given = bearer(authorization)
    if given is None:
        return 401
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return 403
    return 0
