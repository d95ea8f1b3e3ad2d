"""Key expiry re-reads the next expiry only after commits that may have changed keys."""

from turnout.models.change import Action, Change, Commit
from turnout.models.route import RouteSpec
from turnout.serve import may_change_keys
from turnout.storage.keystore import KEY_ENTITY


def _change(kind: str) -> Change:
    return Change(Action.DELETE, kind, "x", {"name": "x"}, None)


def test_a_route_write_does_not_wake_key_expiry() -> None:
    route = RouteSpec(name="r", paths=["/r"], service="s")
    assert not may_change_keys(Commit(7, (Change(Action.CREATE, "route", "r", None, route),)))


def test_key_and_consumer_changes_and_bare_revisions_wake_it() -> None:
    assert may_change_keys(Commit(7, (_change(KEY_ENTITY.kind),)))
    assert may_change_keys(Commit(7, (_change("route"), _change("consumer"))))
    assert may_change_keys(Commit(7))  # heard from elsewhere: anything may have changed
