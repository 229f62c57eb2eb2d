"""Credentials derived from the admin token with HMAC: per-revision scoped tokens that reach
only the buckets a function declared, signatures for expiring object URLs, and the secret in
the S3 notification endpoint's URL. Nothing extra to store; rotating the admin token
invalidates them all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Protocol

SCOPED = re.compile(r"^rev\.(?P<revision>[a-z0-9-]+)\.(?P<mac>[0-9a-f]{64})$")
MAX_URL_SECONDS = 7 * 24 * 3600


class Issued(Protocol):
    """What a scoped token is issued to: a revision, in one incarnation of its function."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> float: ...


class Credentials:
    def __init__(self, admin_token: str) -> None:
        self._root = admin_token.encode()

    def _mac(self, purpose: str, message: str) -> str:
        key = hmac.new(self._root, purpose.encode(), hashlib.sha256).digest()
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()

    def scoped_token(self, revision: Issued) -> str:
        """Signed over the revision's id and creation time: revision ids start again at 00001
        when a function is removed and deployed again, and the old tokens must not work then."""
        incarnation = f"{revision.id}\n{revision.created_at!r}"
        return f"rev.{revision.id}.{self._mac('scoped-token', incarnation)}"

    @staticmethod
    def claimed_revision(token: str) -> str | None:
        """The revision id a token claims to be for (check it with `issued_to`), or None."""
        match = SCOPED.match(token)
        return match["revision"] if match else None

    def issued_to(self, token: str, revision: Issued) -> bool:
        return hmac.compare_digest(token, self.scoped_token(revision))

    def url_signature(self, method: str, bucket: str, key: str, expires: int) -> str:
        return self._mac("signed-url", f"{method}\n{bucket}\n{key}\n{expires}")

    def check_url(self, method: str, bucket: str, key: str, expires: str, signature: str) -> str | None:
        """None if the signed URL is good for this request, else why not."""
        if not expires.isdigit():
            return "signed URL has no valid 'expires'"
        good = self.url_signature(method, bucket, key, int(expires))
        if not hmac.compare_digest(good, signature):
            return "signed URL signature does not match (wrong bucket, key, method or expiry, or altered)"
        if int(expires) < time.time():
            return "signed URL has expired"
        return None

    def notification_secret(self) -> str:
        return self._mac("s3-notifications", "v1")[:40]
