"""Console sessions: the admin token is typed once, then a random session id travels in an
`HttpOnly`, `SameSite=Strict` cookie scoped to `/ui`, and every form carries the session's
CSRF token. Sessions live in memory: signing out ends one for good, and a platform restart
ends them all (sign in again)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

COOKIE = "lepton_console"
LIFETIME = 12 * 3600
MAX_SESSIONS = 1000  # beyond this the oldest session ends: signing in again is cheap


@dataclass
class Session:
    csrf: str
    expires: float
    flash: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once on the next page

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class Sessions:
    def __init__(self, lifetime: float = LIFETIME, limit: int = MAX_SESSIONS) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._by_hash: OrderedDict[str, Session] = OrderedDict()  # by the cookie's sha256, not the cookie itself

    def start(self) -> tuple[str, Session]:
        """A new session and the cookie value that names it."""
        cookie = secrets.token_urlsafe(32)
        session = Session(secrets.token_urlsafe(32), time.time() + self.lifetime)
        self._by_hash[_digest(cookie)] = session
        while len(self._by_hash) > self.limit:
            self._by_hash.popitem(last=False)
        return cookie, session

    def find(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        key = _digest(cookie)
        session = self._by_hash.get(key)
        if session is not None and session.expires < time.time():
            del self._by_hash[key]
            return None
        return session

    def end(self, cookie: str | None) -> None:
        if cookie:
            self._by_hash.pop(_digest(cookie), None)


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()
