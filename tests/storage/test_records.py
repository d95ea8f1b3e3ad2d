"""Keys, tokens and freezes kept in one shape (`turnout/storage/records.py`).

Each is a `Records`: create answers (created, revision), list and get read, delete
answers the revision; every write leaves one audit event. Only a key is a
declaration change: it bumps the revision; a token or a freeze is audited at the
revision as it was.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from turnout.models.consumer import ConsumerSpec
from turnout.models.errors import NotFound
from turnout.models.freeze import FreezeCreate, FreezeScope
from turnout.models.key import KeyCreate
from turnout.models.token import Role, TokenCreate, hash_token
from turnout.storage.records import Records
from turnout.storage.store import Store

SECRET = "records-test-secret-key-0123456789"


@pytest.fixture
def keyed(database_url: str) -> Iterator[Store]:
    store = Store(database_url, secret_key=SECRET)
    store.create("consumer", ConsumerSpec(name="alice"), "t")
    yield store
    store.close()


def _cases(store: Store) -> list[tuple[Records[Any, Any, Any, Any], Any, str, bool]]:
    """(records, a spec to create, the audit kind, whether a write bumps the revision)."""
    return [
        (store.keys.of("alice"), KeyCreate(), "consumer_key", True),
        (store.tokens, TokenCreate(name="ci", role=Role.OPERATOR), "token", False),
        (store.freezes, FreezeCreate(reason="r", scope=FreezeScope(tags=["x"])), "freeze", False),
    ]


def _name(created: Any) -> Any:
    return getattr(created, "id", None) or created.name


@pytest.mark.parametrize("case", [0, 1, 2], ids=["keys", "tokens", "freezes"])
def test_create_list_get_delete_in_one_shape(keyed: Store, case: int) -> None:
    records, spec, kind, bumps = _cases(keyed)[case]
    assert isinstance(records, Records)
    start = keyed.revision()
    created, revision = records.create(spec, "ops")
    assert revision == keyed.revision() == start + bumps
    name = _name(created)
    listed = records.list()
    assert [_name(info) for info in listed] == [name]
    assert records.get(name) == listed[0]
    event = keyed.audit(1)[0]
    assert (event.revision, event.actor, event.action, event.entity_kind) == (
        revision,
        "ops",
        "create",
        kind,
    )
    assert event.after is not None and "token" not in event.after and "key" not in event.after

    deleted = records.delete(name, "ops")
    assert deleted == keyed.revision() == revision + bumps
    event = keyed.audit(1)[0]
    assert (event.revision, event.action, event.entity_kind) == (deleted, "delete", kind)
    assert event.before is not None and event.after is None


def test_get_of_a_missing_record_is_not_found(keyed: Store) -> None:
    for records, _spec, _kind, _bumps in _cases(keyed):
        with pytest.raises(NotFound):
            records.get(999 if records is keyed.freezes else "nope")
        with pytest.raises(NotFound):
            records.delete(999 if records is keyed.freezes else "nope", "ops")
    with pytest.raises(NotFound):
        keyed.keys.of("nobody").list()


def test_a_key_belongs_to_its_consumer(keyed: Store) -> None:
    keyed.create("consumer", ConsumerSpec(name="bob"), "t")
    created, _ = keyed.keys.of("alice").create(KeyCreate(), "t")
    with pytest.raises(NotFound):
        keyed.keys.of("bob").get(created.id)
    with pytest.raises(NotFound):
        keyed.keys.of("bob").delete(created.id, "t")
    assert keyed.keys.of("alice").get(created.id).prefix == created.key[:8]


def test_a_token_is_shown_once_and_stored_as_its_hash(keyed: Store) -> None:
    created, _ = keyed.tokens.create(TokenCreate(name="ci", role=Role.VIEWER), "t")
    assert keyed.tokens.lookup(hash_token(created.token)) == keyed.tokens.get("ci")
    assert "token" not in keyed.tokens.get("ci").model_dump()


def test_lifting_a_lifted_freeze_changes_nothing(keyed: Store) -> None:
    freeze, _ = keyed.freezes.create(FreezeCreate(reason="r", scope=FreezeScope(all=True)), "t")
    keyed.freezes.delete(freeze.id, "t")
    events = len(keyed.audit(100))
    assert keyed.freezes.delete(freeze.id, "t") == keyed.revision()
    assert len(keyed.audit(100)) == events
    lifted = keyed.freezes.get(freeze.id)
    assert lifted.lifted_by == "t" and keyed.audit(1)[0].reason == "lifted"
