"""API keys enforced by a real Envoy: key sources, 401/403, revocation on a live connection."""

import http.client
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_status,
)

TOKEN = "integration-test-token"  # as in conftest.py

LISTENER_STATS = r"(listener_manager\.|http\.turnout_http\.downstream_cx|lds\.)"


def add_key(admin: AdminClient, consumer: str, **body: Any) -> dict[str, Any]:
    response = admin.http.post(f"/consumers/{consumer}/keys", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def keys(admin: AdminClient, upstreams: dict[str, EchoUpstream]) -> dict[str, str]:
    """Consumers alice (group free) and bob, each with one key; service "blue"."""
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    admin.create("consumers", {"name": "alice", "groups": ["free"]})
    admin.create("consumers", {"name": "bob"})
    return {name: add_key(admin, name)["key"] for name in ("alice", "bob")}


def _declare_routes(admin: AdminClient) -> int:
    admin.create(
        "routes",
        {"name": "h", "paths": ["/h"], "service": "blue", "auth": {"allow_groups": ["free"]}},
    )
    admin.create(
        "routes",
        {
            "name": "q",
            "paths": ["/q"],
            "service": "blue",
            "auth": {"key_sources": [{"query": "apikey"}], "allow_consumers": ["alice"]},
        },
    )
    return admin.create(
        "routes",
        {
            "name": "forecast",
            "paths": ["/forecast"],
            "service": "blue",
            "auth": {
                "key_sources": [{"path": "/forecast/{key}"}],
                "allow_consumers": ["alice"],
                "consumer_header": "x-who",
            },
        },
    )


def test_each_key_source_gives_401_403_200_and_the_key_never_goes_upstream(
    admin: AdminClient, envoy: EnvoyProcess, keys: dict[str, str], http: httpx.Client
) -> None:
    admin.wait_synced(envoy.node_id, _declare_routes(admin))
    alice, bob = keys["alice"], keys["bob"]
    base = envoy.url

    cases: list[tuple[str, Callable[[str], dict[str, Any]], str]] = [
        ("/h/x", lambda k: {"headers": {"apikey": k}}, "x-consumer-name"),
        ("/h/x", lambda k: {"headers": {"x-api-key": k}}, "x-consumer-name"),
        ("/h/x", lambda k: {"headers": {"apikey": f"Bearer {k}"}}, "x-consumer-name"),
        ("/q/x", lambda k: {"params": {"apikey": k, "other": "1"}}, "x-consumer-name"),
    ]
    for path, send, consumer_header in cases:
        assert http.get(base + path).status_code == 401
        assert http.get(base + path, **send("not-a-real-key-000000")).status_code == 401
        assert http.get(base + path, **send(bob)).status_code == 403
        ok = http.get(base + path, **send(alice))
        assert ok.status_code == 200, (path, ok.text)
        seen = ok.json()
        assert seen["headers"][consumer_header] == "alice"
        assert alice not in json.dumps(seen), seen

    # The key in the URL path: removed before the request goes upstream.
    assert http.get(f"{base}/forecast").status_code == 401
    assert http.get(f"{base}/forecast/not-a-real-key-000000/today").status_code == 401
    assert http.get(f"{base}/forecast/{bob}/today").status_code == 403
    spoofed = http.get(f"{base}/forecast/x/today", headers={"x-turnout-path-key": alice})
    assert spoofed.status_code == 401
    ok = http.get(f"{base}/forecast/{alice}/today?days=3")
    assert ok.status_code == 200, ok.text
    seen = ok.json()
    assert seen["path"] == "/forecast/today?days=3"
    assert seen["headers"]["x-who"] == "alice"
    leaked = {k: v for k, v in seen["headers"].items() if alice in v}
    assert not leaked, leaked
    assert alice not in json.dumps(seen), seen
    assert http.get(f"{base}/forecast/{alice}").json()["path"] == "/forecast"


def test_a_revoked_key_is_refused_on_the_same_keep_alive_connection_without_a_drain(
    admin: AdminClient, envoy: EnvoyProcess, keys: dict[str, str]
) -> None:
    revision = admin.create("routes", {"name": "h", "paths": ["/h"], "service": "blue", "auth": {}})
    admin.wait_synced(envoy.node_id, revision)
    spare = add_key(admin, "alice")
    admin.wait_synced(envoy.node_id, admin.revision())

    conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=5)

    def get(key: str) -> int:
        conn.request("GET", "/h/x", headers={"apikey": key})
        response = conn.getresponse()
        response.read()
        return response.status

    assert get(spare["key"]) == 200
    assert get(keys["alice"]) == 200
    sock, local = conn.sock, conn.sock.getsockname()  # type: ignore[union-attr]
    before = envoy.stats(LISTENER_STATS)

    revision = admin.write("DELETE", f"/consumers/alice/keys/{spare['id']}")
    admin.wait_synced(envoy.node_id, revision)
    assert get(spare["key"]) == 401
    assert get(keys["alice"]) == 200
    new = add_key(admin, "bob")
    admin.wait_synced(envoy.node_id, admin.revision())
    assert get(new["key"]) == 200

    assert conn.sock is sock and sock.getsockname() == local  # type: ignore[union-attr]
    after = envoy.stats(LISTENER_STATS)
    for name in (
        "listener_manager.listener_modified",
        "listener_manager.total_listeners_draining",
        "http.turnout_http.downstream_cx_destroy",
        "http.turnout_http.downstream_cx_total",
    ):
        assert after.get(name) == before.get(name), (name, before.get(name), after.get(name))
    conn.close()


def test_turnout_refuses_to_start_with_keys_and_no_secret(
    turnout: TurnoutProcess, keys: dict[str, str], tmp_path: Any
) -> None:
    log = tmp_path / "no-secret.log"
    bare = TurnoutProcess(turnout.database_url, TOKEN, log_path=log, env={"TURNOUT_SECRET_KEY": ""})
    with pytest.raises(RuntimeError, match="exited with 2"):
        bare.start()
    assert "TURNOUT_SECRET_KEY is not set" in log.read_text()
    bare.stop()


def test_an_open_route_stays_open_beside_authenticated_ones(
    admin: AdminClient, envoy: EnvoyProcess, keys: dict[str, str], http: httpx.Client
) -> None:
    admin.create("routes", {"name": "open", "paths": ["/open"], "service": "blue"})
    revision = admin.create("routes", {"name": "h", "paths": ["/h"], "service": "blue", "auth": {}})
    admin.wait_synced(envoy.node_id, revision)
    assert http.get(f"{envoy.url}/h").status_code == 401
    assert http.get(f"{envoy.url}/open").status_code == 200


def test_an_expired_key_stops_working(
    admin: AdminClient, envoy: EnvoyProcess, keys: dict[str, str], http: httpx.Client
) -> None:
    revision = admin.create("routes", {"name": "h", "paths": ["/h"], "service": "blue", "auth": {}})
    admin.wait_synced(envoy.node_id, revision)
    soon = datetime.now(UTC) + timedelta(seconds=3)
    short = add_key(admin, "alice", expires_at=soon.isoformat())
    wait_status(http, f"{envoy.url}/h", 200, headers={"apikey": short["key"]})
    wait_status(http, f"{envoy.url}/h", 401, timeout=20, headers={"apikey": short["key"]})
    assert datetime.now(UTC) >= soon
    assert http.get(f"{envoy.url}/h", headers={"apikey": keys["alice"]}).status_code == 200
    assert admin.http.get("/consumers/alice/keys").json()[0]["id"] != short["id"]
