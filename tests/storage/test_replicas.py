"""Cross-process change feed and shared proxy status, on a real PostgreSQL."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from turnout.models.change import Commit
from turnout.models.proxy_status import ProxyStatus
from turnout.models.service import ServiceSpec
from turnout.storage.pg_feed import PgChangeFeed
from turnout.storage.replicas import SharedLoadStats, SharedProxyStatus
from turnout.storage.store import Store
from turnout.xds.lrs import LoadStats

PG = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Fixed:
    def __init__(self, *proxies: ProxyStatus) -> None:
        self.items = list(proxies)

    def proxies(self) -> list[ProxyStatus]:
        return list(self.items)


def _proxy(node_id: str, revision: int = 1) -> ProxyStatus:
    return ProxyStatus(
        node_id=node_id,
        node_cluster="default",
        connected_since=datetime(2026, 1, 1, tzinfo=UTC),
        listener_port=10000,
        revision=revision,
        types=[],
    )


@PG
def test_commit_in_one_store_reaches_subscribers_of_another(database_url: str) -> None:
    a, b = Store(database_url), Store(database_url)
    seen: list[Commit] = []
    arrived = threading.Event()
    before = b.load()

    def on_commit(commit: Commit) -> None:
        seen.append(commit)
        if commit.revision >= 2:
            arrived.set()

    feed = PgChangeFeed(b)
    feed.subscribe(on_commit)
    feed.start()
    try:
        assert feed.connected.wait(10)
        one = ServiceSpec(name="one", url="http://x:1")
        two = ServiceSpec(name="two", url="http://x:1")
        a.create("service", one, "t")
        a.create("service", two, "t")
        assert arrived.wait(5), seen
        revisions = [c.revision for c in seen]
        assert revisions == sorted(revisions) and revisions[-1] == 2
        # Heard from elsewhere: a bare revision, whose changes come from the audit log.
        assert all(c.changes is None for c in seen)
        assert b.load_since(before).services == {"one": one, "two": two}
    finally:
        feed.stop()
        a.close()
        b.close()


@PG
def test_proxy_status_union_across_replicas(database_url: str) -> None:
    store = Store(database_url)
    now = [datetime.now(UTC)]
    a_local, b_local = Fixed(_proxy("edge-a")), Fixed(_proxy("edge-b"))
    a = SharedProxyStatus(store, "a", a_local, clock=lambda: now[0])
    b = SharedProxyStatus(store, "b", b_local, clock=lambda: now[0])
    try:
        assert a.publish() and b.publish()
        assert not a.publish()  # unchanged: no write
        assert [p.node_id for p in a.proxies()] == ["edge-a", "edge-b"]
        b_local.items = [_proxy("edge-b", revision=7)]
        assert b.publish()
        assert next(p for p in a.proxies() if p.node_id == "edge-b").revision == 7
        now[0] += timedelta(seconds=60)  # b stopped refreshing: it is gone
        assert [p.node_id for p in a.proxies()] == ["edge-a"]
        b.withdraw()
    finally:
        store.close()


@PG
def test_load_reports_to_one_replica_count_on_the_other(database_url: str) -> None:
    """The leader's controller judges on reports that reached another replica."""
    store = Store(database_url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    local_a, local_b = LoadStats(), LoadStats()
    for local in (local_a, local_b):
        local.keep_unpublished()
    a = SharedLoadStats(store, "a", local_a, clock=lambda: t0 + timedelta(minutes=5))
    b = SharedLoadStats(store, "b", local_b, clock=lambda: t0 + timedelta(minutes=5))
    try:
        local_a.record("green", 10, 1, at=t0 + timedelta(seconds=1))
        local_b.record("green", 7, 0, at=t0 + timedelta(seconds=2))
        local_b.record("green", 5, 5, at=t0 - timedelta(seconds=1))  # before the window
        local_b.record("blue", 3, 0, at=t0 + timedelta(seconds=2))
        # Not published yet: each replica sees only its own.
        assert a.window("green", t0).requests == 10
        assert b.publish() == 3
        assert b.publish() == 0  # each sample is published once
        assert a.publish() == 1
        # Own figures first-hand plus the other's from the database, never twice.
        assert a.window("green", t0) == b.window("green", t0)
        assert a.window("green", t0).requests == 17
        assert a.window("green", t0).errors == 1
        assert a.window("blue", t0).requests == 3
        assert a.window("green", t0 - timedelta(seconds=5)).requests == 22
        # Rows past the retention are deleted on the next publish.
        old = SharedLoadStats(
            store,
            "a",
            local_a,
            retention=timedelta(seconds=1),
            clock=lambda: t0 + timedelta(hours=2),
        )
        old.publish()
        assert b.window("green", t0).requests == 7  # only b's own, in memory
    finally:
        store.close()


def test_load_stats_keep_nothing_unpublished_unless_asked() -> None:
    """A single replica (no sharing) does not accumulate samples for nobody."""
    local = LoadStats()
    local.record("green", 1, 0)
    assert local.take_unpublished() == []
    local.keep_unpublished()
    local.record("green", 2, 1)
    assert [(s.cluster, s.requests, s.errors) for s in local.take_unpublished()] == [
        ("green", 2, 1)
    ]
    assert local.take_unpublished() == []
