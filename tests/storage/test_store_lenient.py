"""A stored row that today's validation refuses is skipped, not fatal (issue 10).

The bad row is written straight into the database with SQL, as an older Turnout
with looser rules would have left it; on SQLite and PostgreSQL.
"""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import text

from turnout.admin.app import create_app
from turnout.cli import main
from turnout.models.errors import Conflict
from turnout.models.proxy_status import ProxyStatus
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.storage.store import Store


class NoProxies:
    """A real `ProxyStatusSource` with no proxy connected."""

    def proxies(self) -> list[ProxyStatus]:
        return []

    def proxy_config(self, node_id: str) -> None:
        return None


BAD_URL = "http://bad\x01host"


def _corrupt(store: Store, name: str) -> None:
    with store._engine.begin() as conn:  # the row as a looser validation left it
        conn.execute(
            text("UPDATE services SET url = :url WHERE name = :name"),
            {"url": BAD_URL, "name": name},
        )


def _seed(store: Store) -> None:
    store.create("service", ServiceSpec(name="good", url="http://10.0.0.1"), "t")
    store.create("service", ServiceSpec(name="bad", url="http://10.0.0.2"), "t")
    store.create("route", RouteSpec(name="ok", paths=["/ok"], service="good"), "t")
    store.create("route", RouteSpec(name="to-bad", paths=["/bad"], service="bad"), "t")


def test_an_invalid_row_and_its_dependents_are_skipped_and_the_rest_loads(store: Store) -> None:
    _seed(store)
    _corrupt(store, "bad")
    decl = store.load()
    assert set(decl.services) == {"good"} and set(decl.routes) == {"ok"}
    skipped = {(s.kind, s.name): s.reason for s in store.skipped_rows()}
    assert skipped.keys() == {("service", "bad"), ("route", "to-bad")}
    assert "url" in skipped[("service", "bad")]
    assert "service 'bad'" in skipped[("route", "to-bad")]
    labels = {"kind": "service", "name": "bad"}
    with TestClient(create_app(store, NoProxies(), admin_token="t")) as client:
        health = client.get("/healthz").json()
    assert {(r["kind"], r["name"]) for r in health["skipped_rows"]} == skipped.keys()
    assert REGISTRY.get_sample_value("turnout_storage_skipped_rows", labels) == 1

    # Later writes keep loading incrementally; the skipped rows stay out.
    store.create("route", RouteSpec(name="more", paths=["/more"], service="good"), "t")
    later = store.load_since(decl)
    assert set(later.routes) == {"ok", "more"} and set(later.services) == {"good"}

    # Fixing the row through the API brings it and its dependents back.
    store.replace("service", "bad", ServiceSpec(name="bad", url="http://10.0.0.3"), "t")
    fixed = store.load_since(later)
    assert set(fixed.services) == {"good", "bad"}
    assert set(store.load().routes) == {"ok", "more", "to-bad"}
    assert store.skipped_rows() == []
    assert not REGISTRY.get_sample_value("turnout_storage_skipped_rows", labels)


def test_reading_an_invalid_row_names_the_field_and_history_still_replays(store: Store) -> None:
    _seed(store)
    _corrupt(store, "bad")
    with pytest.raises(Conflict) as err:
        store.get("service", "bad")
    assert err.value.field == "url" and "service 'bad'" in str(err.value)
    # The audit history recorded the same looser value: replaying it skips the row.
    value = ":after" if store._engine.dialect.name == "sqlite" else "CAST(:after AS JSON)"
    with store._engine.begin() as conn:
        conn.execute(
            text(f"UPDATE audit_events SET after = {value} WHERE entity_name = 'bad'"),
            {"after": json.dumps({"name": "bad", "url": BAD_URL})},
        )
    decl = store.declaration_at(store.revision())
    assert set(decl.services) == {"good"} and set(decl.routes) == {"ok"}

    # The bad row can still be deleted through the store, which clears the report.
    store.delete("route", "to-bad", "t")
    store.delete("service", "bad", "t")
    assert set(store.load().services) == {"good"} and store.skipped_rows() == []


def test_a_backup_of_an_invalid_row_is_refused_by_name_and_writes_nothing(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(store)
    _corrupt(store, "bad")
    path = tmp_path / "backup.json"
    assert main(["backup", str(path), "--database-url", store.database_url]) == 1
    err = capsys.readouterr().err
    assert "service 'bad'" in err and "url" in err and "nothing written" in err, err
    assert not path.exists()
