"""Tokens and callers: the admin token `lepton up` writes (mode 0600) guards /v1 and private
functions; a revision's scoped token reaches only its declared buckets (and the event
ingress); a signed URL reaches one object.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, HTTPException, Request

from lepton.names import check_bucket_name

if TYPE_CHECKING:
    from lepton_platform.service import Platform


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


@dataclass(frozen=True)
class Access:
    """Who is calling: `buckets` None means every bucket (the admin token)."""

    who: str
    buckets: frozenset[str] | None = None
    revision: str | None = None  # the revision a scoped token was issued to

    def bucket(self, bucket: str) -> str:
        try:
            check_bucket_name(bucket)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        if self.buckets is not None and bucket not in self.buckets:
            raise HTTPException(403, f"{self.who} may not use bucket {bucket!r}: it is not in the function's buckets=[...]")
        return bucket

    def admin(self, what: str) -> None:
        if self.buckets is not None:
            raise HTTPException(403, f"{self.who} may not {what}; that needs the admin token")


def access(request: Request, authorization: Annotated[str | None, Header()] = None) -> Access:
    """Admin token, a revision's scoped token, or a signed URL's query string."""
    platform: Platform = request.app.state.platform
    credentials = platform.credentials
    signature = request.query_params.get("signature")
    if signature is not None and authorization is None:
        bucket, key = request.path_params.get("bucket", ""), request.path_params.get("key", "")
        method = "GET" if request.method == "HEAD" else request.method
        problem = credentials.check_url(method, bucket, key, request.query_params.get("expires", ""), signature)
        if problem:
            raise HTTPException(403, problem)
        return Access("a signed URL", frozenset({bucket}))
    return identify(platform, authorization)


def identify(platform: Platform, authorization: str | None) -> Access:
    """The caller behind an Authorization header: the admin, or a revision's scoped token."""
    token = bearer(authorization)
    if token is not None and token.startswith("rev."):
        revision = platform.credentials.revision_of(token)
        record = platform.store.revision(revision) if revision else None
        if record is None:
            raise HTTPException(403, "invalid scoped token")
        return Access(f"function {record.function} ({record.id})", frozenset(record.spec.buckets), record.id)
    status = check(platform.token, authorization)
    if status:
        raise HTTPException(status, "missing bearer token" if status == 401 else "invalid token", headers={"WWW-Authenticate": "Bearer"})
    return Access("admin")


Caller = Annotated[Access, Depends(access)]
