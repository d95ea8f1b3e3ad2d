"""The change feed across processes: PostgreSQL LISTEN/NOTIFY plus a safety net.

Several `turnout serve` replicas share one PostgreSQL database. A write through
any of them runs `pg_notify('turnout', <revision>)` inside its transaction
(`turnout.storage.notify`, called by the store), which PostgreSQL delivers to every
listener only when the transaction commits. `PgChangeFeed` listens on its own
connection in a thread and announces each revision on the store's `LocalFeed`
(`turnout.storage.feed`), where this process's own commits are published with
their changes, so caches on every replica reload within milliseconds. A
notification of one of this process's commits comes after the commit itself
and is dropped as already heard.

Notifications are not durable: one sent while a listener is reconnecting is
lost. So the feed also reads the revision every `check_interval` seconds and
after every reconnect; the local feed ignores revisions it has already delivered.
"""

import logging
import threading
import time

import psycopg
from sqlalchemy import make_url

from turnout.storage.feed import SAFETY_POLL_SECONDS, ThreadFeed, poll_once
from turnout.storage.notify import CHANNEL
from turnout.storage.store import Store

log = logging.getLogger(__name__)

WAIT_S = 0.5


def libpq_url(database_url: str) -> str:
    """The SQLAlchemy URL as psycopg wants it (no "+psycopg" driver suffix)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class PgChangeFeed(ThreadFeed):
    """`store`'s own commits, and the revisions other processes committed (a `ChangeFeed`)."""

    def __init__(self, store: Store, check_interval: float = SAFETY_POLL_SECONDS) -> None:
        super().__init__(store, "pg-change-feed")
        self._url = libpq_url(store.database_url)
        self._check_interval = check_interval
        self.connected = threading.Event()
        """Set while LISTEN is active (tests wait on it)."""

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    backoff = 0.2
                    self._check()  # anything committed while we were not listening
                    self._listen(conn)
            except psycopg.Error as exc:
                log.warning("change feed: %s; retrying in %.1fs", exc, backoff)
            finally:
                self.connected.clear()
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, self._check_interval)
            self._check()

    def _listen(self, conn: psycopg.Connection) -> None:
        last_check = time.monotonic()
        while not self._stop.is_set():
            # Short waits so that stop() is prompt; the revision check runs every
            # check_interval whether or not notifications arrive.
            for notify in conn.notifies(timeout=WAIT_S):
                try:
                    self._store.commits.announce(int(notify.payload))
                except ValueError:
                    log.warning("change feed: ignoring payload %r", notify.payload)
            if time.monotonic() - last_check >= self._check_interval:
                last_check = time.monotonic()
                conn.execute("SELECT 1")  # notice a dead server, not just silence
                self._check()

    def _check(self) -> None:
        poll_once(self._store)
