"""Leader election over a PostgreSQL advisory lock: once-only work on one replica.

Work that must happen exactly once across replicas (the split plan controller,
scheduled freezes) runs only while `Leader.is_leader` holds. The leader holds a
session-level advisory lock on its own connection; when its process dies or its
connection breaks, PostgreSQL releases the lock and another replica's next try
(every `interval` seconds) takes it. A leader checks its connection every
interval too, and steps down the moment the check fails, so two replicas never
both believe they lead for longer than one interval.

On SQLite there is only ever one process, so it always leads.
"""

import hashlib
import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import make_url

from turnout.storage.pg_feed import libpq_url

log = logging.getLogger(__name__)

INTERVAL_S = 1.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for `name`."""
    return int.from_bytes(
        hashlib.sha256(f"turnout:{name}".encode()).digest()[:8], "big", signed=True
    )


class Leader:
    """Campaign for leadership of `name`; `on_change(is_leader)` runs on each change."""

    def __init__(
        self,
        database_url: str,
        name: str,
        interval: float = INTERVAL_S,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.name = name
        self._interval = interval
        self._on_change = on_change
        self._key = lock_key(name)
        self._postgres = make_url(database_url).get_backend_name() == "postgresql"
        self._url = libpq_url(database_url) if self._postgres else ""
        self._leading = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"leader-{name}")

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_leader(self, timeout: float | None = None) -> bool:
        return self._leading.wait(timeout)

    def start(self) -> "Leader":
        if self._postgres:
            self._thread.start()
        else:
            self._set(True)
        return self

    def stop(self) -> None:
        """Step down (releasing the lock with the connection) and stop campaigning."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self._interval + 5)
        self._set(False)

    def _set(self, leading: bool) -> None:
        if leading == self._leading.is_set():
            return
        if leading:
            self._leading.set()
        else:
            self._leading.clear()
        log.info("%s leadership for %r", "took" if leading else "lost", self.name)
        if self._on_change is not None:
            try:
                self._on_change(leading)
            except Exception:
                log.exception("leader %r on_change failed", self.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    self._campaign(conn)
            except psycopg.Error as exc:
                log.warning("leader %r: %s", self.name, exc)
            self._set(False)
            self._stop.wait(self._interval)

    def _campaign(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            if self.is_leader:
                conn.execute("SELECT 1")  # raises when the session (and lock) is gone
            else:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                if row is not None and row[0]:
                    self._set(True)
            self._stop.wait(self._interval)
