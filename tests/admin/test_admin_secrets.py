"""API keys are shown once, at creation, and nowhere else.

Each test creates keys (one generated, one imported) through the admin API on a real
store and looks for their plaintext where a caller could find it: the proxy views
(the api_key_auth ECDS config as Envoy gets it, Envoy's rejection text), the audit
trail, revisions and their diffs, `GET /config`, `turnout dump`, the logs and the
metrics.
"""

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.protobuf.json_format import MessageToDict

from turnout.admin.app import create_app
from turnout.models.proxy_status import ProxyStatus, TypeStatus
from turnout.storage.store import Store
from turnout.testing.processes import turnout_command
from turnout.xds.snapshot import EXTENSION_CONFIG_TYPE, pack
from turnout.xds.translate.api_key_auth import API_KEY_AUTH_FILTER, build_api_key_auth_config

TOKEN = "test-admin-token"
SECRET = "secrets-test-secret-key"
IMPORTED = "Imported.Key-0123456789abcdef"


class SentConfigs:
    """A `ProxyStatusSource` reporting what the xDS side would: the real ECDS config
    of the store's declaration, and a NACK whose text quotes a key."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _nack(self) -> str:
        keys = self.store.load().api_keys
        return f'credentials {{ key: "{keys[0].key}" client: "{keys[0].consumer}" }} invalid'

    def proxies(self) -> list[ProxyStatus]:
        nacked = TypeStatus(type_url=EXTENSION_CONFIG_TYPE, state="NACKED", last_nack=self._nack())
        return [
            ProxyStatus(
                node_id="envoy-1",
                node_cluster="default",
                connected_since=datetime.now(UTC),
                listener_port=10000,
                types=[nacked],
            )
        ]

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        ecds = pack(build_api_key_auth_config(self.store.load())).any
        return {EXTENSION_CONFIG_TYPE: [MessageToDict(ecds, preserving_proto_field_name=True)]}


@pytest.fixture
def keyed_store(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secret_key=SECRET)
    yield store
    store.close()


@pytest.fixture
def keyed(keyed_store: Store) -> Iterator[tuple[TestClient, list[str]]]:
    """An admin client, and the plaintext of two keys of consumer "acme"."""
    app = create_app(keyed_store, SentConfigs(keyed_store), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.post("/consumers", json={"name": "acme"}).status_code == 201
        created = client.post("/consumers/acme/keys")
        imported = client.post("/consumers/acme/keys", json={"key": IMPORTED})
        assert created.status_code == imported.status_code == 201, imported.text
        keys = [created.json()["key"], imported.json()["key"]]
        assert keys[1] == IMPORTED and keys[0].startswith("tk_")
        client.post("/services", json={"name": "weather", "url": "http://127.0.0.1:1"})
        route = {"name": "w", "paths": ["/w"], "service": "weather", "auth": {}}
        assert client.post("/routes", json=route).status_code == 201
        yield client, keys


def _assert_hidden(text: str, keys: list[str], where: str) -> None:
    for key in keys:
        assert key not in text, f"{where} shows the key {key[:8]}..."


def _viewer(client: TestClient) -> dict[str, str]:
    token = client.post("/tokens", json={"name": "dash", "role": "viewer"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_proxy_config_shows_credentials_redacted(keyed: tuple[TestClient, list[str]]) -> None:
    client, keys = keyed
    response = client.get("/proxies/envoy-1/config", headers=_viewer(client))
    assert response.status_code == 200
    ecds = next(
        c for c in response.json()[EXTENSION_CONFIG_TYPE] if c["name"] == API_KEY_AUTH_FILTER
    )
    credentials = ecds["typed_config"]["credentials"]
    assert sorted(c["client"] for c in credentials) == ["acme", "acme"]
    assert {c["key"] for c in credentials} == {"[redacted]"}
    _assert_hidden(response.text, keys, "GET /proxies/{node_id}/config")


def test_proxy_status_shows_rejections_redacted(keyed: tuple[TestClient, list[str]]) -> None:
    client, keys = keyed
    for path in ("/proxies", "/proxies/envoy-1"):
        response = client.get(path, headers=_viewer(client) if path == "/proxies" else None)
        assert response.status_code == 200
        assert "invalid" in response.text and "acme" in response.text  # the message stays
        _assert_hidden(response.text, keys, path)


def test_audit_and_key_list_never_hold_keys(keyed: tuple[TestClient, list[str]]) -> None:
    client, keys = keyed
    audit = client.get("/audit", params={"entity": "consumer_key"})
    assert len(audit.json()) == 2
    _assert_hidden(client.get("/audit").text, keys, "GET /audit")
    listed = client.get("/consumers/acme/keys").json()
    assert sorted(k["prefix"] for k in listed) == sorted(k[:8] for k in keys)
    _assert_hidden(json.dumps(listed), keys, "GET /consumers/acme/keys")


def test_revisions_config_and_dump_never_hold_keys(
    keyed: tuple[TestClient, list[str]], keyed_store: Store
) -> None:
    client, keys = keyed
    revisions = client.get("/revisions").json()
    _assert_hidden(json.dumps(revisions), keys, "GET /revisions")
    newest = revisions["items"][0]["number"]
    for n in range(newest + 1):
        _assert_hidden(client.get(f"/revisions/{n}").text, keys, f"GET /revisions/{n}")
    _assert_hidden(client.get(f"/revisions/0/diff/{newest}").text, keys, "the diff")
    config = client.get("/config")
    assert [c["name"] for c in config.json()["consumers"]] == ["acme"]
    _assert_hidden(config.text, keys, "GET /config")
    dump = subprocess.run(
        [*turnout_command(), "dump", "--database-url", keyed_store.database_url],
        env={**os.environ, "TURNOUT_SECRET_KEY": SECRET},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "acme" in dump.stdout
    _assert_hidden(dump.stdout + dump.stderr, keys, "turnout dump")


def test_logs_of_creating_and_using_keys_never_hold_them(
    keyed_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(keyed_store, SentConfigs(keyed_store), admin_token=TOKEN)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        client.post("/consumers", json={"name": "acme"})
        key = client.post("/consumers/acme/keys").json()["key"]
        client.post("/consumers/acme/keys", json={"key": IMPORTED})
        client.post("/consumers/acme/keys", json={"key": IMPORTED})  # 409: duplicate
        client.get("/proxies/envoy-1/config")  # decrypts and translates every key
        client.get("/proxies")
    assert caplog.records  # the capture saw the requests
    logged = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    _assert_hidden(logged + caplog.text, [key, IMPORTED], "the log")


def test_metrics_never_hold_keys(keyed: tuple[TestClient, list[str]]) -> None:
    client, keys = keyed
    client.get("/proxies/envoy-1/config")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "# HELP" in metrics.text
    _assert_hidden(metrics.text, keys, "GET /metrics")
