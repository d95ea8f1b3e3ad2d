"""`turnout backup | restore | verify` keep every API key, on real SQLite and PostgreSQL.

Each test runs the CLI in-process (`turnout.cli.main`) against real databases; the
secrets come from the environment, as in production.
"""

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout.cli import main
from turnout.models.consumer import ConsumerSpec
from turnout.models.errors import Conflict
from turnout.models.freeze import FreezeCreate, FreezeScope
from turnout.models.key import KeyCreate
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.storage.store import Store
from turnout.xds.translate import EXTENSION_CONFIG_TYPE

SECRET = "backup-test-secret-0123456789"
OTHER_SECRET = "another-secret-9876543210-xyz"
ALICE_KEYS = ["alice-key-0000000000000001", "alice-key-0000000000000002"]


@pytest.fixture
def second_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Another database on the same backend as `database_url`, without any table."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    server = request.getfixturevalue("_pg_server")
    name = server.create(migrated=False)
    try:
        yield server.url_for(name)
    finally:
        server.drop(name)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TURNOUT_SECRET_KEY", SECRET)
    return SECRET


def _seed(url: str) -> Store:
    """alice (2 keys), bob (1 key), a route that needs a key, in group edge too."""
    store = Store(url, secret_key=SECRET)
    store.create("service", ServiceSpec(name="api", url="http://127.0.0.1:9"), "t")
    store.create("consumer", ConsumerSpec(name="alice"), "t")
    store.create("consumer", ConsumerSpec(name="bob"), "t")
    route = {"name": "api", "service": "api", "groups": ["default", "edge"], "auth": {}}
    store.create("route", RouteSpec.model_validate(route), "t")
    store.keys.import_keys("alice", ALICE_KEYS, "t")
    store.keys.of("bob").create(KeyCreate(), "t")
    return store


def _keys(url: str, secret: str = SECRET) -> dict[str, str]:
    store = Store(url, secret_key=secret)
    try:
        return {k.id: f"{k.consumer}:{k.key}" for k in store.load().api_keys}
    finally:
        store.close()


def _backup(url: str, tmp_path: Path) -> Path:
    path = tmp_path / "backup.json"
    assert main(["backup", str(path), "--database-url", url]) == 0
    return path


def test_backup_restore_keeps_every_key_and_verify_passes(
    database_url: str, second_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    _seed(database_url).close()
    path = _backup(database_url, tmp_path)
    assert "3 API keys" in capsys.readouterr().out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # encrypted keys, whole audit trail
    assert "alice-key" not in path.read_text()  # never in clear
    assert main(["restore", str(path), "--database-url", second_url]) == 0
    assert _keys(second_url) == _keys(database_url) and len(_keys(second_url)) == 3
    assert main(["verify", str(path), "--database-url", second_url]) == 0
    out = capsys.readouterr().out
    assert "3 API keys" in out and "2 node group(s)" in out
    # The restored key table still refuses duplicates: the lookup hashes came along.
    restored = Store(second_url, secret_key=SECRET)
    try:
        with pytest.raises(Conflict):
            restored.keys.of("bob").create(KeyCreate(key=ALICE_KEYS[0]), "t")
    finally:
        restored.close()


def test_verify_fails_loudly_when_one_key_is_missing(
    database_url: str, second_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    _seed(database_url).close()
    path = _backup(database_url, tmp_path)
    data = json.loads(path.read_text())
    lost = data["consumer_keys"].pop(0)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    assert main(["restore", str(tampered), "--database-url", second_url]) == 0
    capsys.readouterr()
    assert main(["verify", str(path), "--database-url", second_url]) == 1
    err = capsys.readouterr().err
    assert f"API key {lost['consumer']}/{lost['id']} is missing" in err
    # The ECDS resource (the keys Envoy checks) is named, in every node group.
    for group in ("default", "edge"):
        assert f"node group '{group}': the database differs" in err
    assert f"{EXTENSION_CONFIG_TYPE}/" in err
    assert "FAILED" in err


def test_restore_force_replaces_consumers_that_have_keys(
    database_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    store = _seed(database_url)
    path = _backup(database_url, tmp_path)
    store.keys.of("bob").create(KeyCreate(), "t")  # drift: a fourth key
    store.close()
    assert main(["restore", "--force", str(path), "--database-url", database_url]) == 0
    capsys.readouterr()
    assert len(_keys(database_url)) == 3
    assert main(["verify", str(path), "--database-url", database_url]) == 0


def test_restore_refuses_a_wrong_or_missing_secret_before_writing(
    database_url: str,
    second_url: str,
    secret: str,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _seed(database_url).close()
    path = _backup(database_url, tmp_path)
    capsys.readouterr()
    monkeypatch.setenv("TURNOUT_SECRET_KEY", OTHER_SECRET)
    assert main(["restore", str(path), "--database-url", second_url]) == 1
    err = capsys.readouterr().err
    assert "cannot be decrypted with TURNOUT_SECRET_KEY" in err and "nothing changed" in err
    assert "--old-secret-key" in err
    monkeypatch.delenv("TURNOUT_SECRET_KEY")
    assert main(["restore", str(path), "--database-url", second_url]) == 1
    assert "holds 3 API key(s): set TURNOUT_SECRET_KEY" in capsys.readouterr().err
    target = Store(second_url)
    try:
        assert target.revision() == 0 and target.keys.count() == 0
        assert target.export()["consumers"] == []
    finally:
        target.close()


def test_restore_with_old_secret_re_encrypts_under_the_new_one(
    database_url: str,
    second_url: str,
    secret: str,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _seed(database_url).close()
    before = _keys(database_url)
    path = _backup(database_url, tmp_path)
    monkeypatch.setenv("TURNOUT_SECRET_KEY", OTHER_SECRET)
    monkeypatch.setenv("TURNOUT_OLD_SECRET_KEY", SECRET)
    argv = ["restore", "--old-secret-key", str(path), "--database-url", second_url]
    assert main(argv) == 0
    assert "re-encrypted under the new secret" in capsys.readouterr().out
    assert _keys(second_url, OTHER_SECRET) == before
    with pytest.raises(ValueError, match="cannot be decrypted"):
        _keys(second_url, SECRET)
    # Lookup hashes are the new secret's: a duplicate is still found.
    restored = Store(second_url, secret_key=OTHER_SECRET)
    try:
        with pytest.raises(Conflict, match="already in use"):
            restored.keys.of("bob").create(KeyCreate(key=ALICE_KEYS[1]), "t")
    finally:
        restored.close()
    verify = ["verify", "--old-secret-key", str(path), "--database-url", second_url]
    assert main(verify) == 0
    # Without the flag the backup's keys do not open under the new secret: said so.
    assert main(["verify", str(path), "--database-url", second_url]) == 1
    assert "cannot be decrypted" in capsys.readouterr().err
    monkeypatch.delenv("TURNOUT_OLD_SECRET_KEY")
    assert main(argv) == 1
    assert "TURNOUT_OLD_SECRET_KEY: unset" in capsys.readouterr().err


def test_backup_of_keys_needs_the_secret(
    database_url: str, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(database_url).close()
    monkeypatch.delenv("TURNOUT_SECRET_KEY", raising=False)
    path = tmp_path / "backup.json"
    assert main(["backup", str(path), "--database-url", database_url]) == 1
    assert "set TURNOUT_SECRET_KEY" in capsys.readouterr().err
    assert not path.exists()


def test_freeze_ids_survive_a_restore(
    database_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    store = _seed(database_url)
    scope = FreezeScope(all=True)
    first = store.freezes.create(FreezeCreate(reason="one", scope=scope), "t")[0]
    second = store.freezes.create(FreezeCreate(reason="two", scope=scope), "t")[0]
    store.freezes.delete(first.id, "t")
    path = _backup(database_url, tmp_path)
    store.freezes.create(FreezeCreate(reason="three", scope=scope), "t")
    store.close()
    assert main(["restore", "--force", str(path), "--database-url", database_url]) == 0
    store = Store(database_url, secret_key=SECRET)
    try:
        assert [f.id for f in store.freezes.list()] == [first.id, second.id]
        # New freezes are numbered after the restored ones (PostgreSQL's sequence moved).
        assert store.freezes.create(FreezeCreate(reason="four", scope=scope), "t")[0].id > second.id
    finally:
        store.close()
    capsys.readouterr()


def test_a_damaged_backup_is_refused_by_name_and_changes_nothing(
    database_url: str, second_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    _seed(database_url).close()
    path = _backup(database_url, tmp_path)
    data = json.loads(path.read_text())
    damaged = tmp_path / "damaged.json"
    cases: list[tuple[str, str]] = [
        ("{not json", "damaged.json"),
        (json.dumps([1, 2]), "is not a Turnout backup"),
        (json.dumps({**data, "revision": "9"}), "is not a Turnout backup"),
    ]
    for field, value in (("id", "x" * 33), ("lookup_hash", "zz"), ("extra", 1)):
        keys = [{**data["consumer_keys"][0], field: value}, *data["consumer_keys"][1:]]
        cases.append((json.dumps({**data, "consumer_keys": keys}), field))
    cases.append((json.dumps({**data, "xds_sha256": [1]}), "xds_sha256 is damaged"))
    cases.append((json.dumps({**data, "routes": [{"name": "x"}]}), "routes[0].service"))
    repeated = [data["consumer_keys"][0], *data["consumer_keys"]]
    cases.append((json.dumps({**data, "consumer_keys": repeated}), "repeat an id"))
    capsys.readouterr()
    for text, named in cases:
        damaged.write_text(text)
        assert main(["restore", str(damaged), "--database-url", second_url]) == 1
        err = capsys.readouterr().err
        assert named in err and "nothing changed" in err, err
        assert main(["verify", str(damaged), "--database-url", database_url]) == 1
        assert named in capsys.readouterr().err
    target = Store(second_url)
    try:
        assert target.revision() == 0 and target.keys.count() == 0
    finally:
        target.close()


def test_a_format_1_backup_still_restores_and_verifies(
    database_url: str, second_url: str, secret: str, tmp_path: Path, capsys: Any
) -> None:
    """Backups written before keys were backed up: flat default-group digests, no keys."""
    store = Store(database_url, secret_key=SECRET)
    store.create("service", ServiceSpec(name="api", url="http://127.0.0.1:9"), "t")
    store.create("route", RouteSpec(name="api", service="api"), "t")
    store.close()
    data = json.loads(_backup(database_url, tmp_path).read_text())
    old = {k: v for k, v in data.items() if k not in ("consumer_keys", "backed_up_at")}
    old |= {"_format_version": "1", "xds_sha256": data["xds_sha256"]["default"]}
    path = tmp_path / "format-1.json"
    path.write_text(json.dumps(old))
    assert main(["restore", str(path), "--database-url", second_url]) == 0
    assert main(["verify", str(path), "--database-url", second_url]) == 0
    assert "1 node group(s) byte-identical" in capsys.readouterr().out
