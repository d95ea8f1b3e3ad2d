"""`turnout dump | diff | apply` and `backup | restore | verify` on real databases."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.cli import main
from turnout.models.consumer import ConsumerSpec
from turnout.storage.store import Store
from turnout.xds.translate import NodeGroup, build_resources

DECLARATION: dict[str, list[dict[str, Any]]] = {
    "services": [
        {"name": "orders", "url": "http://orders.internal:8080", "tags": ["team-a"]},
        {
            "name": "orders-v2",
            "endpoints": [
                {"address": "10.0.0.1", "port": 80, "weight": 2},
                {"address": "10.0.0.2", "port": 80},
            ],
            "connect_timeout_ms": 250,
        },
        {"name": "users", "url": "https://users.example.com/"},
    ],
    "routes": [
        {"name": "orders", "service": "orders", "paths": ["/orders"], "strip_path": True},
        {
            "name": "users",
            "service": "users",
            "hosts": ["*.example.com"],
            "paths": [{"regex": "^/v[0-9]+/users/.*"}],
            "methods": ["GET", "POST"],
            "headers": {"x-env": "prod"},
            "priority": 5,
        },
    ],
    "splits": [
        {
            "name": "orders-canary",
            "route": "orders",
            "targets": [
                {"service": "orders", "weight": 90},
                {"service": "orders-v2", "weight": 10},
            ],
        }
    ],
}


def _xds_bytes(url: str) -> dict[str, list[bytes]]:
    store = Store(url)
    try:
        resources = build_resources(store.load(), NodeGroup())
    finally:
        store.close()
    return {
        t: [m.SerializeToString(deterministic=True) for m in msgs] for t, msgs in resources.items()
    }


def _seed(url: str, tmp_path: Path) -> None:
    source = tmp_path / "source.yaml"
    source.write_text(yaml.safe_dump({"_format_version": "1", **DECLARATION}))
    assert main(["apply", "-f", str(source), "--database-url", url]) == 0


@pytest.fixture
def second_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'second.db'}"


def test_dump_apply_reproduces_xds_bytes(
    database_url: str, second_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database_url, tmp_path)
    capsys.readouterr()
    assert main(["dump", "--database-url", database_url]) == 0
    dumped = capsys.readouterr().out
    assert yaml.safe_load(dumped)["_format_version"] == "1"
    path = tmp_path / "dump.yaml"
    path.write_text(dumped)
    assert main(["apply", "-f", str(path), "--database-url", second_url]) == 0
    assert "revision 1: 6 change(s)" in capsys.readouterr().out
    assert _xds_bytes(second_url) == _xds_bytes(database_url)
    # Applying again changes nothing; diff says so.
    assert main(["apply", "-f", str(path), "--database-url", second_url]) == 0
    assert "0 change(s)" in capsys.readouterr().out
    assert main(["diff", "-f", str(path), "--database-url", second_url]) == 0
    assert capsys.readouterr().out == "no changes\n"


def test_dry_run_and_bad_entity_change_nothing(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database_url, tmp_path)
    before = _xds_bytes(database_url)
    doc = {"_format_version": "1", **DECLARATION, "splits": []}
    path = tmp_path / "next.yaml"
    path.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    assert main(["apply", "--dry-run", "-f", str(path), "--database-url", database_url]) == 0
    assert "delete split orders-canary" in capsys.readouterr().out
    # Changes: exit code 2 (decK's --non-zero-exit-code), so CI can gate on it.
    assert main(["diff", "-f", str(path), "--database-url", database_url]) == 2
    assert "orders-canary" in yaml.safe_load(capsys.readouterr().out)["splits"]["removed"]
    # One broken reference among valid changes: nothing at all is written.
    bad = {**doc, "routes": [*DECLARATION["routes"], {"name": "x", "service": "nope"}]}
    path.write_text(yaml.safe_dump(bad))
    assert main(["apply", "-f", str(path), "--database-url", database_url]) == 1
    assert "service 'nope' does not exist" in capsys.readouterr().err
    # One invalid entity: rejected before the transaction, with its location.
    invalid = {**doc, "services": [*DECLARATION["services"], {"name": "bad", "url": "ftp://x"}]}
    path.write_text(yaml.safe_dump(invalid))
    assert main(["apply", "-f", str(path), "--database-url", database_url]) == 2
    assert "services.3" in capsys.readouterr().err
    assert _xds_bytes(database_url) == before
    store = Store(database_url)
    try:
        assert store.revision() == 1
    finally:
        store.close()


def test_backup_restore_verify(
    database_url: str, second_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed(database_url, tmp_path)
    store = Store(database_url)
    try:
        store.delete("split", "orders-canary", "alice")  # some history: revision 2
    finally:
        store.close()
    backup = tmp_path / "backup.json"
    assert main(["backup", str(backup), "--database-url", database_url]) == 0
    assert main(["restore", str(backup), "--database-url", second_url]) == 0
    assert main(["verify", str(backup), "--database-url", second_url]) == 0
    assert "byte-identical" in capsys.readouterr().out
    assert _xds_bytes(second_url) == _xds_bytes(database_url)
    restored = Store(second_url)
    try:
        assert restored.revision() == 2
        assert [r.number for r in restored.revisions()] == [2, 1]
        assert "orders-canary" in restored.declaration_at(1).splits
    finally:
        restored.close()
    # Not empty any more: refused unless forced.
    assert main(["restore", str(backup), "--database-url", second_url]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["restore", "--force", str(backup), "--database-url", second_url]) == 0
    # A database that drifted fails verification.
    store = Store(second_url)
    try:
        store.delete("route", "users", "bob")
    finally:
        store.close()
    assert main(["verify", str(backup), "--database-url", second_url]) == 1
    assert "differs" in capsys.readouterr().err


SECRET = "config-file-test-secret-0123"


def test_apply_never_deletes_api_keys_silently(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("TURNOUT_SECRET_KEY", SECRET)
    store = Store(database_url, secret_key=SECRET)
    try:
        store.apply({"consumer": {n: ConsumerSpec(name=n) for n in ("acme", "beta", "free")}}, "t")
        store.keys.import_keys("acme", ["acme-key-000000000001", "acme-key-000000000002"], "t")
        store.keys.import_keys("beta", ["beta-key-000000000001"], "t")
        revision = store.revision()
    finally:
        store.close()
    # An old file, from before the consumers existed.
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"_format_version": "1", **DECLARATION, "consumers": []}))
    url = ["--database-url", database_url]
    capsys.readouterr()
    assert main(["diff", "-f", str(old), *url]) == 2
    out = capsys.readouterr().out
    assert "# delete consumer acme (2 API keys): apply refuses unless --delete-keys" in out
    assert "# delete consumer beta (1 API key)" in out and "# delete consumer free" not in out
    for dry in (["--dry-run"], []):
        assert main(["apply", *dry, "-f", str(old), *url]) == 1
        captured = capsys.readouterr()
        assert "delete consumer acme (2 API keys)\n" in captured.out
        assert "delete consumer beta (1 API key)\n" in captured.out
        assert "delete consumer free\n" in captured.out
        assert "consumer(s) acme, beta have API keys" in captured.err
        assert "--delete-keys" in captured.err and "nothing changed" in captured.err
    store = Store(database_url, secret_key=SECRET)
    try:
        assert store.revision() == revision and store.keys.count() == 3
    finally:
        store.close()
    # Asked for explicitly: done, and said how many keys went.
    assert main(["apply", "--delete-keys", "-f", str(old), *url]) == 0
    assert "delete consumer acme (2 API keys)\n" in capsys.readouterr().out
    store = Store(database_url, secret_key=SECRET)
    try:
        assert store.keys.count() == 0 and store.list("consumer") == []
    finally:
        store.close()


def test_kong_import_again_never_deletes_api_keys(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("TURNOUT_SECRET_KEY", SECRET)
    consumer = {"username": "acme", "keyauth_credentials": [{"key": "acme-kong-key-000001"}]}
    kong = tmp_path / "kong.yml"
    kong.write_text(yaml.safe_dump({"_format_version": "3.0", "consumers": [consumer]}))
    url = ["--database-url", database_url]
    assert main(["import", "kong", str(kong), *url]) == 0
    kong.write_text(yaml.safe_dump({"_format_version": "3.0", "consumers": []}))
    capsys.readouterr()
    assert main(["import", "kong", str(kong), *url]) == 1
    err = capsys.readouterr().err
    assert "consumer(s) acme (1 API key) are no longer in the file" in err
    assert "nothing changed" in err
    store = Store(database_url, secret_key=SECRET)
    try:
        assert store.keys.count() == 1
    finally:
        store.close()
