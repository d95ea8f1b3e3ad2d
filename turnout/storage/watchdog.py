"""A deadline on every database statement, whatever the server or the network does.

Server-side limits (PostgreSQL's `statement_timeout` and `lock_timeout`, SQLite's
busy timeout) hold only while the server answers, and TCP keepalives with
`tcp_user_timeout` only when packets are lost. A server that is reachable but does
not answer (stopped, a hung disk, a middlebox that stopped forwarding) leaves the
driver waiting on a socket the kernel keeps acknowledging, for as long as it takes:
a write that hangs for minutes and then commits after its client gave up.

The watchdog is the bound that holds in every case. Each statement (and each
commit, rollback and pool ping) arms a deadline for its connection; one thread per
engine interrupts a connection still busy at its deadline: SQLite through
`sqlite3_interrupt`, PostgreSQL by shutting the socket down under libpq. The blocked
call then raises OperationalError, which the store reports as `StoreUnavailable`
(503). A transaction interrupted before its COMMIT went out is never committed: the
server rolls back a transaction whose connection closed. Only a COMMIT already sent
when the deadline passes has an unknown outcome, and the error says so.

One thread and one dict entry per busy connection (at most the pool size), so the
cost per statement is a lock and a dict write.
"""

import contextlib
import logging
import os
import socket
import sqlite3
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


class StatementWatchdog:
    """Interrupts database connections that are still busy at their deadline."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        """How long one statement (or commit, rollback, ping) may take."""
        self.interrupted = 0
        """How many connections were interrupted so far."""
        self._armed: dict[int, tuple[float, Any]] = {}
        self._in_commit: set[int] = set()
        self._interrupted: dict[int, bool] = {}  # connection -> was its COMMIT outstanding
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, dbapi_connection: Any, *, commit: bool = False) -> None:
        """Start (or restart) the deadline of `dbapi_connection`'s current call."""
        key = id(dbapi_connection)
        with self._cond:
            if self._closed:
                return
            self._armed.pop(key, None)  # keep insertion order = deadline order
            self._armed[key] = (time.monotonic() + self.timeout_s, dbapi_connection)
            if commit:
                self._in_commit.add(key)
            else:
                self._in_commit.discard(key)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="turnout-db-watchdog", daemon=True
                )
                self._thread.start()
            # No notify: the idle thread wakes every `timeout_s` anyway, which is never
            # later than this deadline, and a notify per statement cost a thread switch
            # (about 0.2 ms of each admin write's few statements, issue 17).

    def disarm(self, dbapi_connection: Any) -> None:
        """The call finished in time."""
        key = id(dbapi_connection)
        with self._cond:
            self._armed.pop(key, None)
            self._in_commit.discard(key)

    def forget(self, dbapi_connection: Any) -> None:
        """The connection went back to the pool: drop everything known about it."""
        key = id(dbapi_connection)
        with self._cond:
            self._armed.pop(key, None)
            self._in_commit.discard(key)
            self._interrupted.pop(key, None)

    def take_interrupted(self, dbapi_connection: Any) -> bool | None:
        """None if the watchdog did not interrupt `dbapi_connection`; else whether its
        COMMIT was outstanding then (the outcome of the write is unknown)."""
        with self._cond:
            return self._interrupted.pop(id(dbapi_connection), None)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._armed.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                if not self._armed:
                    # Whatever is armed while this waits has its deadline later than
                    # the wake-up (now + timeout_s): nothing can be missed.
                    self._cond.wait(self.timeout_s)
                    continue
                # Every deadline is "armed + timeout_s", so the oldest entry is the next.
                key, (deadline, conn) = next(iter(self._armed.items()))
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                del self._armed[key]
                self._interrupted[key] = key in self._in_commit
                self._in_commit.discard(key)
                self.interrupted += 1
            log.warning(
                "database call still running after %.1f s: interrupting its connection",
                self.timeout_s,
            )
            _interrupt(conn)


def _interrupt(dbapi_connection: Any) -> None:
    """Make the call blocked on `dbapi_connection` fail now."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        with contextlib.suppress(sqlite3.Error):
            dbapi_connection.interrupt()
        return
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    if pgconn is None:
        return
    try:
        fd = pgconn.socket
    except Exception:  # already closed: nothing is blocked on it
        return
    # shutdown() acts on the socket, not the descriptor: the duplicate we close
    # here leaves libpq's descriptor valid, but its blocked wait sees EOF at once.
    with (
        contextlib.suppress(OSError),
        socket.socket(fileno=os.dup(fd)) as sock,
    ):
        sock.shutdown(socket.SHUT_RDWR)
