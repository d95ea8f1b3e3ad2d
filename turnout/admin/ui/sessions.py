"""Browser sessions of the dashboard: an opaque id in the cookie, the token kept here.

The cookie carries only a random session id (HttpOnly, SameSite=Strict); the
Turnout token it stands for stays in this process's memory and is checked again
on every request, so a revoked or expired token ends its sessions at once.
Sessions are bounded in number (the oldest goes first) and expire.
"""

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

COOKIE = "turnout_session"
MAX_SESSIONS = 1000
"""Sessions kept at once; signing in beyond that ends the oldest."""
SESSION_SECONDS = 8 * 3600.0
"""A session ends this long after sign-in."""


@dataclass(frozen=True)
class Session:
    token: str
    """The Turnout token signed in with; never sent back to the browser."""
    csrf: str
    """Sent with every write (header X-CSRF-Token); a write without it is refused."""
    expires: float
    """time.monotonic() at which the session ends."""

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf)


class Sessions:
    def __init__(self, max_sessions: int = MAX_SESSIONS, ttl: float = SESSION_SECONDS) -> None:
        self.max_sessions = max_sessions
        self.ttl = ttl
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, token: str) -> tuple[str, Session]:
        session = Session(token, secrets.token_urlsafe(32), time.monotonic() + self.ttl)
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._by_id[sid] = session
            while len(self._by_id) > self.max_sessions:
                self._by_id.popitem(last=False)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires <= time.monotonic():
                del self._by_id[sid]
                return None
            return session

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)
