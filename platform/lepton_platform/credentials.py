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

SCOPED = re.compile(r"^rev\.(?P<revision>[a-z0-9-]+)\.(?P<mac>[0-9a-f]{64})$")
MAX_URL_SECONDS = 7 * 24 * 3600


class Credentials:
    def __init__(self, admin_token: str) -> None:
        self._root = admin_token.encode()

    def _mac(self, purpose: str, message: str) -> str:
        key = hmac.new(self._root, purpose.encode(), hashlib.sha256).digest()
        return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()

    def scoped_token(self, revision: str) -> str:
        return f"rev.{revision}.{self._mac('scoped-token', revision)}"

    def revision_of(self, token: str) -> str | None:
        """The revision a scoped token was issued to, or None if it is not a valid one."""
        match = SCOPED.match(token)
        if match and hmac.compare_digest(match["mac"], self._mac("scoped-token", match["revision"])):
            return match["revision"]
        return None

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
