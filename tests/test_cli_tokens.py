"""`turnout token create|list|delete` straight against the database."""

import pytest

from turnout.cli import main
from turnout.models.token import Role, hash_token
from turnout.storage.store import Store


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_token_lifecycle(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    db = ["--database-url", database_url]
    assert (
        main(["token", "create", *db, "--name", "ci", "--role", "operator", "--expires-in", "2h"])
        == 0
    )
    out = capsys.readouterr()
    token = out.out.strip()
    assert "role operator" in out.err and "shown only once" in out.err
    store = Store(database_url)
    try:
        info = store.tokens.lookup(hash_token(token))
        assert info is not None and info.role is Role.OPERATOR and info.created_by == "cli"
        assert main(["token", "create", *db, "--name", "ci", "--role", "viewer"]) == 1
        assert "already exists" in capsys.readouterr().err
        assert main(["token", "list", *db]) == 0
        assert capsys.readouterr().out.startswith("ci\toperator\texpires ")
        assert main(["token", "delete", *db, "--name", "ci"]) == 0
        assert store.tokens.list() == []
        assert main(["token", "delete", *db, "--name", "ci"]) == 1
        assert store.audit(1)[0].actor == "cli"
    finally:
        store.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_expiry(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["token", "create", "--database-url", database_url, "--name", "x", "--role", "viewer"]
    assert main([*args, "--expires-in", "soon"]) == 2
    assert "--expires-in" in capsys.readouterr().err


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_name_is_refused_as_the_api_refuses_it(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["token", "create", "--database-url", database_url, "--role", "viewer"]
    assert main([*args, "--name", "bad name"]) == 2
    assert "--name" in capsys.readouterr().err
    store = Store(database_url)
    try:
        assert store.tokens.list() == []
    finally:
        store.close()
