"""Replaying the audit trail gives exactly the stored declaration at every revision."""

from typing import Any

from turnout.storage.store import Store


def test_replay_equals_load_after_every_write(store: Store, make: Any) -> None:
    seen = {0: store.load()}
    writes = [
        lambda: store.create("service", make.service("a"), "t"),
        lambda: store.create("service", make.service("b"), "t"),
        lambda: store.create("route", make.route("r", service="a"), "t"),
        lambda: store.replace("route", "r", make.route("r", service="b"), "t"),
        lambda: store.delete("service", "a", "t"),
        lambda: store.create("service", make.service("a", connect_timeout_ms=7), "t"),
    ]
    for write in writes:
        revision = write()
        seen[revision] = store.load()
    for revision, decl in seen.items():
        assert store.declaration_at(revision) == decl


def test_apply_is_one_revision_and_dry_run_changes_nothing(store: Store, make: Any) -> None:
    target = {"service": {"a": make.service("a"), "b": make.service("b")}}
    dry = store.apply(target, "t", dry_run=True)
    assert dry.revision is None and len(dry.changes) == 2
    assert store.revision() == 0 and store.audit() == []
    result = store.apply(target, "t", reason="sync")
    assert result.revision == 1
    assert {e.revision for e in store.audit()} == {1}
    assert store.revisions()[0].summary == "create service a; create service b"
