"""Staged plans judged by Envoy's own load reports: real Envoy, real LRS, real controller.

blue is the baseline, green the target. A request loop runs in a thread through
Envoy the whole time; every response is recorded with its time and upstream.
"""

import itertools
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, wait_for

HOLD = 2.0
REPORT_INTERVAL = 1.0  # turnout.xds.lrs.DEFAULT_INTERVAL_SECONDS
SETTLE = timedelta(seconds=0.3)
"""Skip this long after a step's commit when measuring shares (RDS push + in-flight)."""


@dataclass
class Loop:
    url: str
    seen: list[tuple[datetime, int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        wait_for(lambda: len(self.seen) > 50, 20, "the request loop to get going")

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                response = client.get(f"{self.url}/api/x")
                service = response.headers.get("x-upstream", "?")
                self.seen.append((datetime.now(UTC), response.status_code, service))

    def between(self, start: datetime, end: datetime) -> list[tuple[datetime, int, str]]:
        return [s for s in self.seen if start <= s[0] < end]


@pytest.fixture
def loop(envoy: EnvoyProcess) -> Iterator[Loop]:
    steady = Loop(envoy.url)
    yield steady
    steady.stop.set()
    if steady.thread is not None:
        steady.thread.join(10)


def _declare(admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream]) -> None:
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
                "steps": [1, 10, 50, 100],
                "hold_seconds": HOLD,
                "criteria": {"max_error_rate": 0.05, "min_requests": 5},
            },
        },
    )
    admin.wait_synced(envoy.node_id, revision)


def _split(admin: AdminClient) -> dict[str, Any]:
    return dict(admin.http.get("/splits/api-move").json())


def _events(admin: AdminClient) -> list[dict[str, Any]]:
    events = admin.http.get("/audit", params={"entity": "split/api-move"}).json()
    return [e for e in reversed(events) if e["action"] == "update"]


def test_plan_runs_1_10_50_100_without_a_failed_request(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], loop: Loop
) -> None:
    _declare(admin, envoy, upstreams)
    loop.start()
    admin.write("POST", "/splits/api-move/advance", {"reason": "start the move"})
    wait_for(
        lambda: _split(admin)["plan_state"]["status"] == "completed", 90, "the plan to complete"
    )
    loop.stop.set()
    assert {status for _, status, _ in loop.seen} == {200}
    events = _events(admin)
    actors = [(e["actor"], e["after"]["plan_state"]["step"]) for e in events]
    # Steps 1 %, 10 %, 50 %, 100 %, then completed after 100 % held too.
    assert actors == [("admin", 0), *[("controller", step) for step in (1, 2, 3, 3)]]
    assert events[0]["reason"] == "advance: start the move"
    assert all(e["reason"].startswith("advance: held 2s") for e in events[1:])
    # The share of green in each step's window is what the step says.
    for event, nxt, pct in zip(events, events[1:], [1, 10, 50, 100], strict=False):
        start = datetime.fromisoformat(event["at"]) + SETTLE
        window = loop.between(start, datetime.fromisoformat(nxt["at"]))
        n = len(window)
        share = sum(1 for _, _, s in window if s == "green") / n
        p = pct / 100
        tolerance = 4 * math.sqrt(p * (1 - p) / n) + 0.01
        assert abs(share - p) <= tolerance, (pct, n, share)
    # Each step held at least the hold time.
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert all(b - a >= timedelta(seconds=HOLD) for a, b in itertools.pairwise(times))


def test_failing_target_is_rolled_back_by_the_controller(
    admin: AdminClient, envoy: EnvoyProcess, upstreams: dict[str, EchoUpstream], loop: Loop
) -> None:
    _declare(admin, envoy, upstreams)
    loop.start()
    admin.write("POST", "/splits/api-move/advance")
    wait_for(lambda: _split(admin)["plan_state"]["step"] >= 1, 60, "the 10% step")
    upstreams["green"].answer_with(500)
    failed_at = datetime.now(UTC)
    wait_for(lambda: _split(admin)["plan_state"]["status"] == "rolled_back", 30, "the rollback")
    rollback = _events(admin)[-1]
    rolled_at = datetime.fromisoformat(rollback["at"])
    assert rolled_at - failed_at <= timedelta(seconds=HOLD + REPORT_INTERVAL), rolled_at - failed_at
    assert rollback["actor"] == "controller"
    assert rollback["reason"].startswith("rollback: target error rate")
    assert "above the ceiling 5.0%" in rollback["reason"]
    split = _split(admin)
    assert {t["service"]: t["weight"] for t in split["targets"]} == {"blue": 10000, "green": 0}
    assert split["plan_status"]["observed"]["green"]["requests"] >= 0
    # Traffic is back on the baseline: nothing reaches green any more.
    settle = rolled_at + SETTLE
    wait_for(lambda: len(loop.between(settle, datetime.now(UTC))) > 100, 20, "more requests")
    after = loop.between(settle, datetime.now(UTC))
    assert {(status, s) for _, status, s in after} == {(200, "blue")}
