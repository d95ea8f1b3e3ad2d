"""Story (b) of issue 11: move a cluster to a new database, API keys and all.

A runbook, each step as the operator would say it. Cluster A is a real `turnout
serve` (SQLite, and PostgreSQL when TURNOUT_TEST_DATABASE_URL is set); cluster B is
a second `turnout serve` on a new database of the same kind, with a real Envoy
attached. Every CLI step runs the `turnout` command as the operator would.
"""

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    AdminError,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    turnout_command,
)
from turnout.xds.translate import EXTENSION_CONFIG_TYPE

TOKEN = "integration-test-token"  # as in conftest.py
SECRET = "integration-test-secret-key"  # as in conftest.py: cluster B shares A's secret
BOB_KEY = "bob-imported-key-0000000001"


@pytest.fixture
def turnout_xds_mode() -> str:
    """One mode is enough: this story is about the data; test_auth runs keys both ways."""
    return "sotw"


@pytest.fixture
def new_database(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], str]]:
    """`new_database("b")`: a database without any table, on A's backend."""
    made: list[str] = []
    server = None if database_url.startswith("sqlite") else request.getfixturevalue("_pg_server")

    def make(name: str) -> str:
        if server is None:
            return f"sqlite:///{tmp_path / f'{name}.db'}"
        made.append(server.create(migrated=False))
        return str(server.url_for(made[-1]))

    yield make
    for name in made:
        server.drop(name)  # type: ignore[union-attr]


def turnout_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TURNOUT_SECRET_KEY": SECRET}
    return subprocess.run(
        [*turnout_command(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def _declare(admin: AdminClient, upstreams: dict[str, EchoUpstream]) -> dict[str, str]:
    """Services, an open route, two routes with keys, consumers with keys; their keys."""
    admin.create("consumers", {"name": "alice", "groups": ["free"]})
    admin.create("consumers", {"name": "bob"})
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    admin.create("services", {"name": "green", "url": upstreams["green"].url})
    admin.create("routes", {"name": "open", "paths": ["/open"], "service": "blue"})
    auth = {"key_sources": [{"header": "x-api-key"}]}
    admin.create("routes", {"name": "keyed", "paths": ["/keyed"], "service": "green", "auth": auth})
    free = {**auth, "allow_groups": ["free"]}
    admin.create("routes", {"name": "free", "paths": ["/free"], "service": "blue", "auth": free})
    keys = {}
    for consumer, body in (("alice", {}), ("bob", {"key": BOB_KEY}), ("bob", {})):
        response = admin.http.post(f"/consumers/{consumer}/keys", json=body)
        assert response.status_code == 201, response.text
        keys[response.json()["id"]] = response.json()["key"]
    return keys


def test_move_cluster_a_to_a_new_database_with_every_key(
    admin: AdminClient,
    turnout: TurnoutProcess,
    upstreams: dict[str, EchoUpstream],
    new_database: Callable[[str], str],
    tmp_path: Path,
    http: httpx.Client,
) -> None:
    # Cluster A serves our services, routes and consumers with their keys.
    keys = _declare(admin, upstreams)
    alice_key = keys[next(iter(keys))]

    # Freeze A so nothing changes while we move.
    freeze = admin.http.post("/freezes", json={"reason": "move to B", "scope": {"all": True}})
    assert freeze.status_code == 201
    revision = admin.revision()

    # Back up A.
    backup = tmp_path / "a.json"
    done = turnout_cli("backup", str(backup), "--database-url", turnout.database_url)
    assert done.returncode == 0, done.stderr
    assert "2 consumers" in done.stdout and "3 API keys" in done.stdout

    # Restore it into B's new, empty database.
    b_url = new_database("b")
    done = turnout_cli("restore", str(backup), "--database-url", b_url)
    assert done.returncode == 0, done.stderr
    assert f"restored revision {revision}" in done.stdout and "(3 API keys)" in done.stdout

    # Start Turnout on B, with A's secret, and attach an Envoy to it.
    b = TurnoutProcess(
        b_url, TOKEN, env={"TURNOUT_SECRET_KEY": SECRET}, log_path=tmp_path / "b.log"
    ).start()
    envoy = EnvoyProcess("envoy-b", b.xds_address, log_path=tmp_path / "envoy-b.log")
    b_admin = AdminClient(b.admin_url, TOKEN)
    try:
        envoy.start()
        b_admin.wait_synced("envoy-b", revision, timeout=30)

        # B serves every route, and every key works there: 200 with it, 401 without.
        assert http.get(f"{envoy.url}/open/x").json()["service"] == "blue"
        assert http.get(f"{envoy.url}/keyed/x").status_code == 401
        assert (
            http.get(
                f"{envoy.url}/keyed/x", headers={"x-api-key": "no-such-key-000000"}
            ).status_code
            == 401
        )
        for key in keys.values():
            answer = http.get(f"{envoy.url}/keyed/x", headers={"x-api-key": key})
            assert answer.status_code == 200 and answer.json()["service"] == "green"
        # Groups came along: only alice (group free) may use /free.
        assert http.get(f"{envoy.url}/free/x", headers={"x-api-key": alice_key}).status_code == 200
        assert http.get(f"{envoy.url}/free/x", headers={"x-api-key": BOB_KEY}).status_code == 403
        assert http.get(f"{envoy.url}/free/x").status_code == 401

        # B is at A's revision, with A's history and A's freeze (same id): still frozen.
        assert b_admin.revision() == revision
        assert b_admin.http.get("/revisions").json() == admin.http.get("/revisions").json()
        (b_freeze,) = b_admin.http.get("/freezes").json()["items"]
        assert b_freeze["id"] == freeze.json()["id"] and b_freeze["state"] == "active"
        with pytest.raises(AdminError) as frozen:
            b_admin.create("services", {"name": "x", "url": "http://127.0.0.1:9"})
        assert frozen.value.response.status_code == 423

        # Verify B against the backup: every xDS resource, keys (ECDS) included, is equal.
        done = turnout_cli("verify", str(backup), "--database-url", b_url)
        assert done.returncode == 0, done.stderr
        assert "byte-identical" in done.stdout and "3 API keys" in done.stdout
    finally:
        b_admin.close()
        envoy.stop()
        b.stop()

    # Had one key been lost on the way, verify would say so, and name it.
    data = json.loads(backup.read_text())
    lost = data["consumer_keys"].pop()
    damaged = tmp_path / "lost-one-key.json"
    damaged.write_text(json.dumps(data))
    c_url = new_database("c")
    assert turnout_cli("restore", str(damaged), "--database-url", c_url).returncode == 0
    done = turnout_cli("verify", str(backup), "--database-url", c_url)
    assert done.returncode == 1
    assert f"API key {lost['consumer']}/{lost['id']} is missing" in done.stderr
    assert f"{EXTENSION_CONFIG_TYPE}/" in done.stderr and "FAILED" in done.stderr
