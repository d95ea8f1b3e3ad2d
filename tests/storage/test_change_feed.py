"""The change feed: a commit publishes its revision and exact changes, once, after
commit and never for a failed write; the safety poll hears other processes' commits."""

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from turnout.models.change import Commit
from turnout.models.consumer import ConsumerSpec
from turnout.models.errors import Conflict
from turnout.models.key import KeyCreate
from turnout.storage.audit import Action
from turnout.storage.feed import PollingFeed
from turnout.storage.store import Store


def test_called_after_commit_with_new_revision(store: Store, make: Any) -> None:
    seen: list[tuple[int, int]] = []

    def on_change(commit: Commit) -> None:
        # Called after commit: the write is already visible to a fresh reader.
        seen.append((commit.revision, store.revision()))

    store.commits.subscribe(on_change)
    store.create("service", make.service("a"), "t")
    store.replace("service", "a", make.service("a", connect_timeout_ms=5), "t")
    store.delete("service", "a", "t")
    assert seen == [(1, 1), (2, 2), (3, 3)]


def test_a_commit_carries_exactly_the_changes_of_its_write(seeded: Store, make: Any) -> None:
    seen: list[Commit] = []
    seeded.commits.subscribe(seen.append)
    v2 = make.service("orders-v2", connect_timeout_ms=7)
    seeded.replace("service", "orders-v2", v2, "t")
    split = make.split(orders=90, orders_v2=10)
    seeded.create("split", split, "t")
    target = seeded.load().by_kind()
    del target["split"]["orders-canary"]
    target["service"]["extra"] = make.service("extra")
    seeded.apply(target, "t")
    first, second, third = seen
    assert first.revision == 4 and first.changes is not None
    ((change,),) = [first.changes]
    assert (change.action, change.kind, change.name) == (Action.UPDATE, "service", "orders-v2")
    assert change.after is v2  # the very spec written, not a copy read back
    assert second.changes is not None
    assert [(c.action, c.kind, c.name, c.after) for c in second.changes] == [
        (Action.CREATE, "split", "orders-canary", split)
    ]
    assert third.revision == 6 and third.changes is not None
    assert {(c.action, c.kind, c.name) for c in third.changes} == {
        (Action.CREATE, "service", "extra"),
        (Action.DELETE, "split", "orders-canary"),
    }


def test_advance_applies_the_changes_and_equals_a_full_load(database_url: str, make: Any) -> None:
    store = Store(database_url, secret_key="feed-test-secret-key-0123456789")
    commits: list[Commit] = []
    store.commits.subscribe(commits.append)
    try:
        store.create("consumer", ConsumerSpec(name="alice"), "t")
        store.create("service", make.service("orders"), "t")
        store.create("service", make.service("orders-v2"), "t")
        before = store.load()
        commits.clear()
        store.create("route", make.route("orders"), "t")
        store.create("split", make.split(orders=50, orders_v2=50), "t")
        store.replace("service", "orders-v2", make.service("orders-v2", connect_timeout_ms=9), "t")
        soon = datetime.now(UTC) + timedelta(hours=1)
        store.keys.of("alice").create(KeyCreate(expires_at=soon), "t")
        store.create("consumer", ConsumerSpec(name="bob"), "t")
        store.delete("consumer", "bob", "t")
        after = store.advance(before, commits)
        assert after == store.load()
        assert after.services["orders"] is before.services["orders"]  # untouched: same object
        assert len(after.api_keys) == 1
    finally:
        store.close()


def test_not_called_on_failure(seeded: Store, make: Any) -> None:
    seen: list[Commit] = []
    seeded.commits.subscribe(seen.append)
    with pytest.raises(Conflict):
        seeded.create("service", make.service("orders"), "t")
    with pytest.raises(Conflict):
        seeded.delete("service", "orders", "t")
    seeded.set_admin_token_hash("0" * 64)
    assert seen == []


def test_unsubscribe_and_failing_subscriber(store: Store, make: Any) -> None:
    first: list[int] = []
    second: list[int] = []

    def broken(commit: Commit) -> None:
        raise RuntimeError("subscriber bug")

    store.commits.subscribe(broken)
    unsubscribe = store.commits.subscribe(lambda c: first.append(c.revision))
    store.commits.subscribe(lambda c: second.append(c.revision))
    assert store.create("service", make.service("a"), "t") == 1  # the write still succeeds
    unsubscribe()
    unsubscribe()  # idempotent
    store.create("service", make.service("b"), "t")
    assert first == [1]
    assert second == [1, 2]


def test_callback_may_unsubscribe_itself(store: Store, make: Any) -> None:
    seen: list[int] = []

    def once(commit: Commit) -> None:
        seen.append(commit.revision)
        unsubscribe()

    unsubscribe = store.commits.subscribe(once)
    store.create("service", make.service("a"), "t")
    store.create("service", make.service("b"), "t")
    assert seen == [1]


def test_a_bare_revision_already_heard_is_dropped(store: Store, make: Any) -> None:
    """A NOTIFY of this process's own commit comes after the commit: heard once."""
    seen: list[Commit] = []
    store.commits.subscribe(seen.append)
    store.create("service", make.service("a"), "t")
    store.commits.announce(1)
    store.commits.announce(2)
    assert [(c.revision, c.changes is None) for c in seen] == [(1, False), (2, True)]


def test_the_poll_hears_a_commit_no_notification_announced(tmp_path: Path, make: Any) -> None:
    url = f"sqlite:///{tmp_path / 'feed.db'}"
    serving, other = Store(url), Store(url)
    serving.upgrade()
    heard: list[Commit] = []
    arrived = threading.Event()

    def on_commit(commit: Commit) -> None:
        heard.append(commit)
        arrived.set()

    feed = PollingFeed(serving, interval=0.05)
    feed.subscribe(on_commit)
    feed.start()
    try:
        other.create("service", make.service("a"), "cli")  # another process: no event here
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            arrived.wait(0.1)
        assert heard == [Commit(1)]  # a bare revision: the changes are in the audit log
        previous = serving.declaration_at(0)
        assert serving.load_since(previous).services == {"a": make.service("a")}
    finally:
        feed.stop()
        serving.close()
        other.close()


def test_a_commit_made_while_another_write_waits_says_it_is_followed(
    store: Store, make: Any
) -> None:
    seen: list[Commit] = []
    store.commits.subscribe(seen.append)
    store.create("service", make.service("solo"), "t")
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with store.write_transaction() as session:
            holding.set()
            release.wait(10)
            store.commit_changes(session, "t", [])

    writer = threading.Thread(target=first)
    writer.start()
    assert holding.wait(10)
    second = threading.Thread(target=store.create, args=("service", make.service("b"), "t"))
    second.start()  # waits for the write lock the first one holds
    deadline = time.monotonic() + 10
    while store._writers < 2:
        assert time.monotonic() < deadline, "the second write never started"
        time.sleep(0.005)
    release.set()
    writer.join(10)
    second.join(10)
    assert [c.followed for c in seen] == [False, True, False]
