"""Story (a), as a runbook: several services moved off their legacy upstreams by
staged plans under steady traffic, a freeze holding one of them, rollbacks.

Each step is a comment in the operator's words. The traffic goes through a real
Envoy; what each backend served is counted at the upstreams themselves.

Five services, not fifty: every service adds a legacy and a new echo upstream and
takes a share of one request loop. Its 1 % step advances only after the new backend
has served `min_requests` (one request in a hundred goes there), so at fifty
services on the 2-core CI machine the first step alone would take minutes; five
exercise everything that fifty would (plans in parallel, a freeze by tag holding
one, rollbacks) in well under a minute.
"""

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from turnout.testing.processes import AdminClient, EchoUpstream, EnvoyProcess, wait_for

DOMAINS = ("orders", "payments", "users", "search", "billing")
FROZEN = "payments"
HOLD = 1.5
PLAN_TIMEOUT = 120


@dataclass
class Traffic:
    """Steady GETs through Envoy, round-robin over the domains, every answer kept."""

    url: str
    statuses: Counter[int] = field(default_factory=Counter)
    served: Counter[str] = field(default_factory=Counter)
    """Requests answered per domain (any status)."""
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        wait_for(lambda: min(self.served[d] for d in DOMAINS) >= 20, 30, "traffic to flow")

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                for domain in DOMAINS:
                    try:
                        status = client.get(f"{self.url}/{domain}/item").status_code
                    except httpx.HTTPError:
                        status = 0  # a connection error is a failed request too
                    self.statuses[status] += 1
                    self.served[domain] += 1

    def more(self, domain: str, n: int) -> None:
        """Wait until `n` more requests for `domain` were answered."""
        goal = self.served[domain] + n
        wait_for(lambda: self.served[domain] >= goal, 30, f"{n} more {domain} requests")

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)


@pytest.fixture
def backends() -> Iterator[dict[str, EchoUpstream]]:
    """`<domain>-legacy` and `<domain>-v2` for every domain."""
    servers = {
        f"{d}-{kind}": EchoUpstream(f"{d}-{kind}").start()
        for d in DOMAINS
        for kind in ("legacy", "v2")
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def traffic(envoy: EnvoyProcess) -> Iterator[Traffic]:
    steady = Traffic(envoy.url)
    yield steady
    steady.finish()


def _split(admin: AdminClient, domain: str) -> dict[str, Any]:
    response = admin.http.get(f"/splits/{domain}-move")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _status(admin: AdminClient, domain: str) -> str:
    return str(_split(admin, domain)["plan_state"]["status"])


def _weights(admin: AdminClient, domain: str) -> dict[str, int]:
    return {t["service"]: t["weight"] for t in _split(admin, domain)["targets"]}


def _counts(backends: dict[str, EchoUpstream]) -> dict[str, int]:
    return {name: server.requests for name, server in backends.items()}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_staged_migration_of_five_services_with_a_freeze_and_rollbacks(
    admin: AdminClient,
    envoy: EnvoyProcess,
    backends: dict[str, EchoUpstream],
    traffic: Traffic,
) -> None:
    # We declare, for each domain, its legacy backend and its new one, both tagged
    # with the domain, and a route that sends everything to legacy.
    for domain in DOMAINS:
        for kind in ("legacy", "v2"):
            name = f"{domain}-{kind}"
            admin.create(
                "services", {"name": name, "url": backends[name].url, "tags": [domain, kind]}
            )
        admin.create(
            "routes",
            {
                "name": domain,
                "paths": [f"/{domain}"],
                "service": f"{domain}-legacy",
                "tags": [domain],
            },
        )
    # Clients keep calling every domain through the gateway the whole time.
    admin.wait_synced(envoy.node_id, admin.revision())
    traffic.start()

    # Each domain gets a split with a plan: 1 %, 10 %, 50 %, 100 % on the new backend,
    # each step held while the new backend stays healthy. The splits carry no tag:
    # they are covered through their route and services.
    for domain in DOMAINS:
        admin.create(
            "splits",
            {
                "name": f"{domain}-move",
                "route": domain,
                "targets": [
                    {"service": f"{domain}-legacy", "weight": 1},
                    {"service": f"{domain}-v2", "weight": 0},
                ],
                "plan": {
                    "target": f"{domain}-v2",
                    "baseline": f"{domain}-legacy",
                    "steps": [1, 10, 50, 100],
                    "hold_seconds": HOLD,
                    "criteria": {"max_error_rate": 0.05, "min_requests": 2},
                },
            },
        )
    admin.wait_synced(envoy.node_id, admin.revision())
    assert all(v == 0 for k, v in _counts(backends).items() if k.endswith("-v2"))

    # We start every plan.
    for domain in DOMAINS:
        admin.write("POST", f"/splits/{domain}-move/advance", {"reason": "start the move"})

    # Payments has an incident elsewhere: once its move is under way, we freeze
    # everything tagged payments. Its split carries no tag but is held all the same.
    wait_for(
        lambda: _split(admin, FROZEN)["plan_state"]["step"] >= 1,
        PLAN_TIMEOUT,
        "the payments move to reach 10 %",
    )
    freeze = admin.http.post(
        "/freezes", json={"reason": "payments incident INC-7", "scope": {"tags": [FROZEN]}}
    )
    assert freeze.status_code == 201, freeze.text
    held = _split(admin, FROZEN)
    assert held["plan_state"]["status"] == "running", held["plan_state"]
    # Nobody can move its traffic now, by hand or by advancing the plan.
    moved = {
        "targets": [
            {"service": f"{FROZEN}-legacy", "weight": 0},
            {"service": f"{FROZEN}-v2", "weight": 1},
        ]
    }
    for method, path, body in [
        ("PATCH", f"/splits/{FROZEN}-move", moved),
        ("POST", f"/splits/{FROZEN}-move/advance", None),
        ("POST", f"/splits/{FROZEN}-move/promote", None),
    ]:
        response = admin.http.request(method, path, json=body)
        assert response.status_code == 423, (method, path, response.text)
        assert response.json()["freeze"]["id"] == freeze.json()["id"]

    # The other moves carry on to the end.
    others = [d for d in DOMAINS if d != FROZEN]
    wait_for(
        lambda: all(_status(admin, d) == "completed" for d in others),
        PLAN_TIMEOUT,
        "every other move to complete",
    )
    # Payments stayed where the freeze caught it, though its holds ran out long ago.
    assert _split(admin, FROZEN)["plan_state"] == held["plan_state"]
    assert _weights(admin, FROZEN) == {t["service"]: t["weight"] for t in held["targets"]}

    # Completed moves: the legacy backends serve nothing any more.
    before = _counts(backends)
    for domain in others:
        traffic.more(domain, 30)
    after = _counts(backends)
    for domain in others:
        assert after[f"{domain}-legacy"] == before[f"{domain}-legacy"], domain
        assert after[f"{domain}-v2"] > before[f"{domain}-v2"], domain

    # The incident needs payments back on legacy: rollback works during the freeze.
    rolled = admin.http.post(f"/splits/{FROZEN}-move/rollback", json={"reason": "INC-7"})
    assert rolled.status_code == 200, rolled.text
    assert _weights(admin, FROZEN) == {f"{FROZEN}-legacy": 10_000, f"{FROZEN}-v2": 0}
    admin.wait_synced(envoy.node_id, admin.revision())
    traffic.more(FROZEN, 5)  # requests in flight at the switch
    before = _counts(backends)
    traffic.more(FROZEN, 30)
    after = _counts(backends)
    assert after[f"{FROZEN}-v2"] == before[f"{FROZEN}-v2"]
    assert after[f"{FROZEN}-legacy"] > before[f"{FROZEN}-legacy"]

    # The incident is over; we lift the freeze.
    assert admin.http.delete(f"/freezes/{freeze.json()['id']}").status_code == 204

    # Orders turns out to misbehave on the new backend after all: one call puts all
    # of its traffic back on legacy.
    rolled = admin.http.post("/splits/orders-move/rollback", json={"reason": "late errors"})
    assert rolled.status_code == 200, rolled.text
    admin.wait_synced(envoy.node_id, admin.revision())
    traffic.more("orders", 5)
    before = _counts(backends)
    traffic.more("orders", 30)
    after = _counts(backends)
    assert after["orders-v2"] == before["orders-v2"]
    assert after["orders-legacy"] > before["orders-legacy"]

    # Through all of it, not one client request failed.
    traffic.finish()
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert sum(traffic.statuses.values()) > 500
