"""API keys against a real `turnout serve` and Envoy: after keys are created and used
through Envoy, a viewer finds none of them in GET /proxies/{node_id}/config (the
api_key_auth config as sent over ECDS, keys redacted), GET /proxies, GET /metrics,
nor in Turnout's log."""

from pathlib import Path

import httpx
import pytest

from turnout.testing.processes import (
    AdminClient,
    EchoUpstream,
    EnvoyProcess,
    TurnoutProcess,
    wait_status,
)
from turnout.xds.translate.api_key_auth import API_KEY_AUTH_FILTER
from turnout.xds.translate.resources import EXTENSION_CONFIG_TYPE

IMPORTED = "Imported.Key-0123456789abcdef"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # storage is not the point
def test_keys_are_shown_once_and_never_again(
    turnout: TurnoutProcess,
    admin: AdminClient,
    envoy: EnvoyProcess,
    upstreams: dict[str, EchoUpstream],
    http: httpx.Client,
) -> None:
    admin.create("services", {"name": "blue", "url": upstreams["blue"].url})
    admin.create("consumers", {"name": "alice"})
    keys = []
    for body in ({}, {"key": IMPORTED}):
        created = admin.http.post("/consumers/alice/keys", json=body)
        assert created.status_code == 201, created.text
        keys.append(created.json()["key"])
    revision = admin.create("routes", {"name": "h", "paths": ["/h"], "service": "blue", "auth": {}})
    admin.wait_synced(envoy.node_id, revision)
    for key in keys:  # used: Envoy has them all
        wait_status(http, f"{envoy.url}/h", 200, headers={"apikey": key})
    assert (
        http.get(f"{envoy.url}/h", headers={"apikey": "not-a-real-key-000000"}).status_code == 401
    )

    token = admin.http.post("/tokens", json={"name": "dash", "role": "viewer"}).json()["token"]
    viewer = AdminClient(turnout.admin_url, token)
    try:
        config = viewer.http.get(f"/proxies/{envoy.node_id}/config")
        assert config.status_code == 200
        ecds = next(
            c for c in config.json()[EXTENSION_CONFIG_TYPE] if c["name"] == API_KEY_AUTH_FILTER
        )
        credentials = ecds["typed_config"]["credentials"]
        assert [c["client"] for c in credentials] == ["alice", "alice"]
        assert {c["key"] for c in credentials} == {"[redacted]"}
        seen = {
            "GET /proxies/{node_id}/config": config.text,
            "GET /proxies": viewer.http.get("/proxies").text,
            "GET /proxies/{node_id}": viewer.http.get(f"/proxies/{envoy.node_id}").text,
            "GET /metrics": viewer.http.get("/metrics").text,
        }
    finally:
        viewer.close()
    assert "turnout_xds_pushes_total" in seen["GET /metrics"]
    assert turnout.log_path is not None
    seen["turnout's log"] = Path(turnout.log_path).read_text()
    for where, text in seen.items():
        for key in keys:
            assert key not in text, f"{where} shows the key {key[:8]}..."
