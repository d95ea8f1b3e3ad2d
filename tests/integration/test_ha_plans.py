"""A staged plan survives the death of the leader: two replicas on one PostgreSQL,
an Envoy that knows both, a steady request loop through it the whole time.

The plan controller runs only on the replica holding the leader lock, and judges
with the load reports (LRS) Envoy sends. Killing the leader mid-plan must hand the
controller to the other replica within seconds, and the plan must finish there.
"""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_for,
)

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TOKEN = "integration-test-token"
TOOK = "took leadership for 'turnout-singleton-work'"
STEPS = [10, 25, 50, 75, 100]
HOLD = 1.5


@dataclass
class Loop:
    """Requests through Envoy in a thread; every (time, status) is kept."""

    url: str
    seen: list[tuple[datetime, int]] = field(default_factory=list)
    failures: list[tuple[datetime, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        wait_for(lambda: len(self.seen) > 50, 20, "the request loop to get going")

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                try:
                    status = client.get(f"{self.url}/api/x").status_code
                except httpx.HTTPError as exc:
                    self.failures.append((datetime.now(UTC), repr(exc)))
                    continue
                self.seen.append((datetime.now(UTC), status))

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture
def replica_b(database_url: str, tmp_path: Path) -> Iterator[TurnoutProcess]:
    proc = TurnoutProcess(
        database_url, TOKEN, log_path=tmp_path / "turnout-b.log", args=["--replica-id", "b"]
    ).start()
    yield proc
    proc.stop()


def _leads(proc: TurnoutProcess) -> bool:
    assert proc.log_path is not None
    return TOOK in proc.log_path.read_text()


def _split(admin: AdminClient) -> dict[str, Any]:
    return dict(admin.http.get("/splits/api-move").json())


def _controller_steps(admin: AdminClient) -> list[dict[str, Any]]:
    events = admin.http.get("/audit", params={"entity": "split/api-move"}).json()
    return [e for e in reversed(events) if e["action"] == "update" and e["actor"] == "controller"]


def test_plan_controller_resumes_on_the_other_replica_when_the_leader_dies(
    turnout: TurnoutProcess,
    admin: AdminClient,
    replica_b: TurnoutProcess,
    tmp_path: Path,
    upstreams: dict[str, EchoUpstream],
) -> None:
    envoy = EnvoyProcess(
        "envoy-1",
        turnout.xds_address,
        log_path=tmp_path / "envoy.log",
        bootstrap={"more_xds_addresses": (replica_b.xds_address,)},
    ).start()
    admin_b = AdminClient(replica_b.admin_url, TOKEN)
    loop = Loop(envoy.url)
    try:
        for name, upstream in upstreams.items():
            admin.create("services", {"name": name, "url": upstream.url})
        admin.create("routes", {"name": "api", "paths": ["/api"], "service": "blue"})
        revision = admin.create(
            "splits",
            {
                "name": "api-move",
                "route": "api",
                "targets": [{"service": "blue", "weight": 1}, {"service": "green", "weight": 0}],
                "plan": {
                    "target": "green",
                    "baseline": "blue",
                    "steps": STEPS,
                    "hold_seconds": HOLD,
                    "criteria": {"max_error_rate": 0.05, "min_requests": 5},
                },
            },
        )
        # The write went through A; the Envoy may hold its stream on either replica.
        admin_b.wait_synced("envoy-1", revision, timeout=15)
        loop.start()
        wait_for(lambda: _leads(turnout) or _leads(replica_b), 15, "one replica to lead")
        leader, survivor, survivor_admin = (
            (turnout, replica_b, admin_b) if _leads(turnout) else (replica_b, turnout, admin)
        )
        assert not _leads(survivor)

        admin_b.write("POST", "/splits/api-move/advance", {"reason": "start the move"})
        wait_for(lambda: _split(admin)["plan_state"]["step"] >= 1, 30, "a controller step")
        before = _split(admin)["plan_state"]
        assert before["status"] == "running"
        assert 1 <= before["step"] < len(STEPS) - 1, before

        leader.stop(kill=True)
        killed_at, killed = datetime.now(UTC), time.monotonic()
        wait_for(lambda: _leads(survivor), 15, "the other replica to take over")
        took_over = time.monotonic() - killed
        assert took_over < 10, f"leadership moved after {took_over:.1f}s"

        wait_for(
            lambda: _split(survivor_admin)["plan_state"]["status"] == "completed",
            60,
            "the plan to complete on the survivor",
        )
        finished = time.monotonic() - killed
        split = _split(survivor_admin)
        assert {t["service"]: t["weight"] for t in split["targets"]} == {"blue": 0, "green": 10000}

        steps = _controller_steps(survivor_admin)
        at = [datetime.fromisoformat(e["at"]) for e in steps]
        assert any(t < killed_at for t in at), "no controller step before the failover"
        assert any(t > killed_at for t in at), "no controller step after the failover"
        assert [e["after"]["plan_state"]["step"] for e in steps] == [1, 2, 3, 4, 4]
        assert all(e["reason"].startswith(f"advance: held {HOLD:g}s") for e in steps)
        # Nothing was lost while the Envoy's xDS (and LRS) streams moved over.
        loop.close()
        assert loop.failures == [], loop.failures[:5]
        assert {status for _, status in loop.seen} == {200}
        assert finished < 60
    finally:
        loop.close()
        envoy.stop()
        admin_b.close()
