"""Every database call has a deadline, even when the server never answers."""

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url, text

from turnout.storage import db

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def test_sqlite_statement_interrupted_at_its_deadline(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/t.db", statement_deadline_s=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(sa_exc.OperationalError) as info, engine.connect() as conn:
            conn.execute(text(FOREVER))
        assert isinstance(info.value.orig, db.DeadlineExceeded)
        assert "did not answer within 0.3 s" in str(info.value.orig)
        assert time.monotonic() - started < 5
        with engine.connect() as conn:  # the connection is usable again
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        db.dispose(engine)


def test_no_deadline_option_exempts_a_connection(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/t.db", statement_deadline_s=0.05)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(**{db.NO_DEADLINE: True})
            # 0.2 s of work: four times the deadline, finished all the same.
            count = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {})"
            n = 200_000
            started = time.monotonic()
            while time.monotonic() - started < 0.2:
                assert conn.execute(text(count.format(n) + " SELECT count(*) FROM c")).scalar() == n
    finally:
        db.dispose(engine)


class _Blackhole:
    """Accepts connections and never answers: a hung server the kernel still ACKs for."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def blackhole() -> Iterator[_Blackhole]:
    hole = _Blackhole()
    yield hole
    hole.close()


def test_postgresql_that_never_answers_fails_within_the_connect_timeout(
    blackhole: _Blackhole,
) -> None:
    url = make_url("postgresql+psycopg://postgres@127.0.0.1/x").set(port=blackhole.port)
    engine = db.make_engine(url.render_as_string(False), statement_deadline_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(sa_exc.OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < db.PG_CONNECT_TIMEOUT_S + 3
    finally:
        db.dispose(engine)
