"""Several replicas on one PostgreSQL database: a write through one reaches the
proxies of another within milliseconds, and proxy status is visible everywhere."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

TOKEN = "integration-test-token"


@pytest.fixture
def replica_b(database_url: str, tmp_path: Path) -> Iterator[TurnoutProcess]:
    proc = TurnoutProcess(
        database_url, TOKEN, log_path=tmp_path / "turnout-b.log", args=["--replica-id", "b"]
    ).start()
    yield proc
    proc.stop()


def test_write_through_a_reaches_envoy_on_b(
    admin: AdminClient,
    replica_b: TurnoutProcess,
    tmp_path: Path,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = EnvoyProcess(
        "envoy-b", replica_b.xds_address, log_path=tmp_path / "envoy-b.log"
    ).start()
    admin_b = AdminClient(replica_b.admin_url, TOKEN)
    try:
        admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
        started = time.monotonic()
        revision = admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
        admin_b.wait_synced("envoy-b", revision, timeout=10)
        elapsed = time.monotonic() - started
        assert elapsed < 5, f"write on A took {elapsed:.3f}s to reach Envoy on B"
        assert wait_status(http, f"{envoy.url}/x", 200).json()["service"] == "blue"
        # Replica A, which has no proxy of its own, shows B's proxy and its revision.
        wait_for(
            lambda: (p := admin.proxy("envoy-b")) is not None and p["revision"] == revision,
            15,
            "replica A to show envoy-b at the current revision",
        )
    finally:
        envoy.stop()
        admin_b.close()


def test_envoy_fails_over_between_replicas(
    turnout: TurnoutProcess,
    admin: AdminClient,
    replica_b: TurnoutProcess,
    tmp_path: Path,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    envoy = EnvoyProcess(
        "envoy-1",
        turnout.xds_address,
        log_path=tmp_path / "envoy.log",
        bootstrap={"more_xds_addresses": (replica_b.xds_address,)},
    ).start()
    admin_b = AdminClient(replica_b.admin_url, TOKEN)
    try:
        admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
        admin.create("services", {"name": "green", "url": upstreams["green"].url})
        revision = admin.create("routes", {"name": "api", "paths": ["/"], "service": "blue"})
        admin.wait_synced("envoy-1", revision, timeout=15)
        # Kill whichever replica holds the stream; the other takes it over.
        holder, survivor, survivor_admin = (
            (turnout, replica_b, admin_b)
            if _holds_stream(turnout, "envoy-1")
            else (replica_b, turnout, admin)
        )
        holder.stop(kill=True)
        revision = survivor_admin.write("PATCH", "/routes/api", {"service": "green"})
        survivor_admin.wait_synced("envoy-1", revision, timeout=30)
        assert wait_status(http, f"{envoy.url}/x", 200).json()["service"] == "green"
        assert survivor.proc is not None
    finally:
        envoy.stop()
        admin_b.close()


def _holds_stream(proc: TurnoutProcess, node_id: str) -> bool:
    """Whether `proc` logged a stream from `node_id` (the other replica only
    shows it through the database)."""
    assert proc.log_path is not None
    return f"opened by node {node_id}" in proc.log_path.read_text()


def test_once_only_work_moves_to_the_other_replica_when_the_leader_dies(
    turnout: TurnoutProcess, replica_b: TurnoutProcess
) -> None:
    took = "took leadership for 'turnout-singleton-work'"

    def leads(proc: TurnoutProcess) -> bool:
        assert proc.log_path is not None
        return took in proc.log_path.read_text()

    wait_for(lambda: leads(turnout) or leads(replica_b), 15, "one replica to lead")
    leader, follower = (turnout, replica_b) if leads(turnout) else (replica_b, turnout)
    assert not leads(follower)
    leader.stop(kill=True)
    killed = time.monotonic()
    wait_for(lambda: leads(follower), 15, "the other replica to take over")
    assert time.monotonic() - killed < 10
