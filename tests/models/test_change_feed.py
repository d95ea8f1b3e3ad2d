"""The change feed fires after a commit, once per write, and never for a failed one."""

from typing import Any

import pytest

from turnout.models.errors import Conflict
from turnout.storage.store import Store


def test_called_after_commit_with_new_revision(store: Store, make: Any) -> None:
    seen: list[tuple[int, int]] = []

    def on_change(revision: int) -> None:
        # Called after commit: the write is already visible to a fresh reader.
        seen.append((revision, store.revision()))

    store.subscribe(on_change)
    store.create("service", make.service("a"), "t")
    store.replace("service", "a", make.service("a", connect_timeout_ms=5), "t")
    store.delete("service", "a", "t")
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_not_called_on_failure(seeded: Store, make: Any) -> None:
    seen: list[int] = []
    seeded.subscribe(seen.append)
    with pytest.raises(Conflict):
        seeded.create("service", make.service("orders"), "t")
    with pytest.raises(Conflict):
        seeded.delete("service", "orders", "t")
    seeded.set_admin_token_hash("0" * 64)
    assert seen == []


def test_unsubscribe_and_failing_subscriber(store: Store, make: Any) -> None:
    first: list[int] = []
    second: list[int] = []

    def broken(revision: int) -> None:
        raise RuntimeError("subscriber bug")

    store.subscribe(broken)
    unsubscribe = store.subscribe(first.append)
    store.subscribe(second.append)
    assert store.create("service", make.service("a"), "t") == 1  # the write still succeeds
    unsubscribe()
    unsubscribe()  # idempotent
    store.create("service", make.service("b"), "t")
    assert first == [1]
    assert second == [1, 2]


def test_callback_may_unsubscribe_itself(store: Store, make: Any) -> None:
    seen: list[int] = []

    def once(revision: int) -> None:
        seen.append(revision)
        unsubscribe()

    unsubscribe = store.subscribe(once)
    store.create("service", make.service("a"), "t")
    store.create("service", make.service("b"), "t")
    assert seen == [1]
