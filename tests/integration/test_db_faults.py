"""A database that is locked or silent stalls nothing but the writes, and only for a bound.

- Another process holds the write lock (SQLite's, or PostgreSQL's revision row):
  80 writes at once all answer 503 within the lock timeout plus the write queue's
  wait, while `/healthz` and reads keep answering at once; none of the 80 is ever
  committed, and the next write after the lock is released succeeds.
- PostgreSQL stops answering (a forwarder that holds every byte, as a hung server or
  a partition looks: the kernel still acknowledges what is sent): a write answers
  503 within the documented bound, and once the partition heals and the held bytes
  arrive, it is not committed later.
"""

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import make_url
from tcp_proxy import TcpProxy

from turnout.admin.write_gate import WAIT_S
from turnout.storage.db import POOL_TIMEOUT_S, SQLITE_BUSY_TIMEOUT_MS, STATEMENT_DEADLINE_S
from turnout.testing.processes import AdminClient, TurnoutProcess, wait_for, wait_status

TOKEN = "integration-test-token"
WRITES = 80
LOCK_BOUND_S = 2 * (WAIT_S + SQLITE_BUSY_TIMEOUT_MS / 1000)
"""From the moment it reaches Turnout a write waits at most WAIT_S for its turn, then
the lock timeout (PostgreSQL's lock_timeout is the same). Measured from the client on
a loaded 2-core machine, reaching Turnout can itself take seconds: twice that bound."""
READ_DEADLINE_S = 2.0
"""Reads do not wait for writes at all; before the write queue they took 9.8-12.8 s."""


@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another process's transaction holding the lock every Turnout write needs."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(url.database or "", isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        conn.execute("SELECT value FROM revision FOR UPDATE")
        yield
        conn.rollback()


def _write(admin_url: str, i: int) -> tuple[int, float, str]:
    started = time.monotonic()
    with httpx.Client(base_url=admin_url, timeout=60) as client:
        response = client.post(
            "/services",
            json={"name": f"w{i}", "url": "http://127.0.0.1:1"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    return response.status_code, time.monotonic() - started, response.text


def test_locked_database_reads_stay_fast_writes_answer_503_and_never_commit(
    turnout: TurnoutProcess, admin: AdminClient
) -> None:
    admin.create("services", {"name": "existing", "url": "http://127.0.0.1:1"})
    revision = admin.http.get("/healthz").json()["revision"]
    with write_lock_held(turnout.database_url), ThreadPoolExecutor(WRITES) as pool:
        writes = [pool.submit(_write, turnout.admin_url, i) for i in range(WRITES)]
        reads = 0
        with httpx.Client(
            base_url=turnout.admin_url,
            timeout=READ_DEADLINE_S,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as reader:
            # Reads while the writes pile up: each must answer within the deadline
            # (a timeout raises and fails the test).
            while not all(w.done() for w in writes):
                assert reader.get("/healthz").json()["revision"] == revision
                names = [s["name"] for s in reader.get("/services").json()["items"]]
                assert names == ["existing"]
                reads += 1
        results = [w.result() for w in writes]
    assert reads >= 5, "the writes ended before the reads could be measured"
    statuses = {status for status, _, _ in results}
    assert statuses == {503}, [r for r in results if r[0] != 503][:3]
    slowest = max(took for _, took, _ in results)
    assert slowest < LOCK_BOUND_S, f"a write took {slowest:.1f} s to answer 503"
    assert all("database" in text for _, _, text in results)
    # Nothing of the 80 was written, then or later; the next write goes through.
    assert admin.http.get("/healthz").json()["revision"] == revision
    assert _names(admin) == ["existing"]
    assert admin.create("services", {"name": "after", "url": "http://127.0.0.1:1"}) > revision


def _names(admin: AdminClient) -> list[str]:
    return [s["name"] for s in admin.http.get("/services").json()["items"]]


def _busy_backends(database_url: str, ports: set[int]) -> int:
    """How many server sessions from `ports` are inside a transaction or a statement."""
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(False), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE client_port = ANY(%s) AND state IS DISTINCT FROM 'idle'",
            (list(ports),),
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_silent_postgresql_answers_503_in_bounded_time_and_never_commits_later(
    database_url: str, pg_behind_proxy: tuple[str, TcpProxy], tmp_path: Path
) -> None:
    url, proxy = pg_behind_proxy
    turnout = TurnoutProcess(url, TOKEN, log_path=tmp_path / "turnout.log").start()
    admin = AdminClient(turnout.admin_url, TOKEN)
    try:
        before = admin.create("services", {"name": "existing", "url": "http://127.0.0.1:1"})
        proxy.silence()
        held = proxy.server_ports()
        started = time.monotonic()
        status, took, text = _write(turnout.admin_url, 0)
        assert status == 503, text
        assert "database unavailable" in text, text
        # The pool's ping, one reconnect (connect timeout) and the statement itself.
        bound = POOL_TIMEOUT_S + 2 * STATEMENT_DEADLINE_S + 5
        assert took < bound, f"the write took {took:.1f} s to answer 503 (bound {bound} s)"
        assert time.monotonic() - started < bound
        held |= proxy.server_ports()  # and any connection opened meanwhile

        # The partition heals: every byte held back reaches PostgreSQL now.
        proxy.resume()
        wait_status(admin.http, "/healthz", 200, timeout=60)
        # Once no session of the silent period is inside a transaction, the server
        # has acted on everything it received from them: the write must not be there.
        wait_for(lambda: _busy_backends(database_url, held) == 0, 60, "the held sessions")
        assert _names(admin) == ["existing"]
        assert admin.http.get("/healthz").json()["revision"] == before
        assert admin.create("services", {"name": "after", "url": "http://127.0.0.1:1"}) > before
    finally:
        admin.close()
        turnout.stop()
