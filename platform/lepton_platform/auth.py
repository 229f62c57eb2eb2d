"""Tokens and callers: the admin token `lepton up` writes (mode 0600) guards /v1 and private
functions; a revision's scoped token reaches only its declared buckets, the event ingress and
the private functions in its `calls=[...]`; an access key (keys.py) invokes the functions it
names and sends events; a signed URL reaches one object.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from lepton.errors import BucketError
from lepton.names import check_bucket_name
from lepton_platform.errors import Denied
from lepton_platform.keys import PREFIX as KEY_PREFIX

if TYPE_CHECKING:
    from starlette.requests import Request

    from lepton_platform.catalog import Revision
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


BEARER = MappingProxyType({"WWW-Authenticate": "Bearer"})  # the challenge of a 401, and of a 403 for a wrong token


def require_admin(expected: str, authorization: str | None) -> None:
    """Denied (401 or 403) unless the header carries the admin token; nothing else will do."""
    status = check(expected, authorization)
    if status:
        raise Denied("missing bearer token" if status == 401 else "invalid token", status, BEARER)


@dataclass(frozen=True)
class Access:
    """Who is calling: `buckets` None means every bucket (the admin token)."""

    who: str
    buckets: frozenset[str] | None = None
    revision: str | None = None  # the revision a scoped token was issued to
    key: str | None = None  # the id of an access key
    functions: frozenset[str] | None = None  # what an access key may invoke; None: every function

    def bucket(self, bucket: str) -> str:
        try:
            check_bucket_name(bucket)
        except ValueError as exc:
            raise BucketError(str(exc)) from None
        if self.buckets is not None and bucket not in self.buckets:
            raise Denied(f"{self.who} may not use bucket {bucket!r}: it is not in the function's buckets=[...]")
        return bucket

    def admin(self, what: str) -> None:
        if self.buckets is not None:
            raise Denied(f"{self.who} may not {what}; that needs the admin token")


def access(platform: Platform, request: Request, authorization: str | None) -> Access:
    """Admin token, a revision's scoped token, or a signed URL's query string."""
    credentials = platform.credentials
    signature = request.query_params.get("signature")
    if signature is not None and authorization is None:
        bucket, key = request.path_params.get("bucket", ""), request.path_params.get("key", "")
        method = "GET" if request.method == "HEAD" else request.method
        problem = credentials.check_url(method, bucket, key, request.query_params.get("expires", ""), signature)
        if problem:
            raise Denied(problem)
        return Access("a signed URL", frozenset({bucket}))
    return identify(platform, authorization, what=f"use {request.method} {request.url.path}")


def identify(platform: Platform, authorization: str | None, *, keys: bool = False, what: str = "use this route") -> Access:
    """The caller behind an Authorization header: the admin, a revision's scoped token, or
    (only where `keys`: the routes a caller of functions needs) an access key. An access key
    anywhere else gets a 403 that says it may not `what`."""
    token = bearer(authorization)
    if token is not None and hmac.compare_digest(token.encode(), platform.token.encode()):
        return Access("admin")
    if token is not None and token.startswith(KEY_PREFIX):
        key = platform.keys.find(token)
        if key is None:
            raise Denied("invalid key")
        now = time.time()
        problem = key.problem(now)
        if problem:
            raise Denied(problem, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not keys:
            raise Denied(
                f"a key may not {what} (key {key.id}): keys invoke functions (/fn/NAME), "
                "use their jobs (/v1/jobs) and send events (POST /v1/events); the rest needs the admin token"
            )
        platform.keys.used(key, now)
        return Access(f"key {key.id}", frozenset(), key=key.id, functions=key.functions or None)
    if token is not None and token.startswith("rev."):
        revision = platform.credentials.claimed_revision(token)
        record = platform.catalog.revision(revision) if revision else None
        if record is None or not platform.credentials.issued_to(token, record):
            raise Denied("invalid scoped token")
        return Access(f"function {record.function} ({record.id})", frozenset(record.spec.buckets), record.id)
    if token is None:
        raise Denied("missing bearer token", 401, BEARER)
    raise Denied("invalid token", 403, BEARER)


@dataclass(frozen=True)
class _Scoped:
    who: str
    calls: frozenset[str]
    function: str
    fleet: object  # the function's fleet when this was looked up: a removed function's is gone


class Callers:
    """Who may invoke a private function: the decision `router.admit` asks of every
    invocation, whichever way it came (socket fast path or ASGI, embedded or Knative).

    In order, cheapest and commonest first: the admin token (one constant-time comparison,
    as before keys existed); an access key that names the function, or names none, and is
    neither revoked nor expired (a hash and a dict lookup); a revision's scoped token whose
    spec lists the function in `calls=[...]` (a dict lookup; an HMAC and the revision's spec
    the first time)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._admin = platform.token.encode()
        self._scoped: dict[str, _Scoped] = {}  # by token; only valid ones, so at most one per revision

    def refusal(self, function: str, authorization: str | None) -> tuple[int, str] | None:
        """None when the caller may invoke private `function`, else the status and reason."""
        token = bearer(authorization)
        if token is None:
            return 401, f"missing bearer token for function {function!r}"
        if hmac.compare_digest(token.encode(), self._admin):
            return None
        if token.startswith(KEY_PREFIX):
            return self.platform.keys.refusal(token, function)
        if token.startswith("rev."):
            caller = self._scoped_caller(token)
            if caller is None:
                return 403, f"invalid scoped token for function {function!r}"
            if function in caller.calls:
                return None
            return 403, (
                f"{caller.who} may not invoke function {function!r}: it is not in the caller's "
                f"calls=[{', '.join(repr(c) for c in sorted(caller.calls))}]"
            )
        return 403, f"invalid token for function {function!r}"

    def _scoped_caller(self, token: str) -> _Scoped | None:
        cached = self._scoped.get(token)
        # Revisions are immutable, but their ids come back when a function is removed and
        # deployed again: an entry lasts as long as the fleet it was looked up with.
        if cached is not None and self.platform.fleets.get(cached.function) is cached.fleet:
            return cached
        revision_id = self.platform.credentials.claimed_revision(token)
        if revision_id is None:
            return None
        function = revision_id.rsplit("-", 1)[0]
        fleet = self.platform.fleets.get(function)
        record: Revision | None = fleet.revision if fleet is not None and fleet.revision.id == revision_id else None
        if record is None:  # a revision that no longer takes traffic (its replicas may still be draining)
            record = self.platform.catalog.revision(revision_id)
            if record is None:
                return None
        if not self.platform.credentials.issued_to(token, record):
            return None
        caller = _Scoped(
            f"function {record.function} ({record.id})",
            frozenset(record.spec.calls),
            record.function,
            self.platform.fleets.get(record.function),
        )
        self._scoped[token] = caller
        return caller
