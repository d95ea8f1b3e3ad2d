"""The snapshot cache's reload policy: coalescing bursts, always ending on the newest."""

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from turnout.models.change import Action, Change, Commit
from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.storage.store import Store
from turnout.xds import cache as cache_module
from turnout.xds.cache import MAX_DELAY_SECONDS, WAKE_BATCH, SnapshotCache
from turnout.xds.snapshot import ROUTE_TYPE, Snapshot
from turnout.xds.translate import NodeGroup


class InMemorySource:
    """A `DeclarationSource` and `ChangeFeed` whose commits cost nothing, so a test can
    commit a thousand revisions in well under a second from another thread, as the
    admin API's worker threads do. Its commits are heard as bare revisions (as from
    another replica), so every reload is a `load`, which the tests count."""

    def __init__(self) -> None:
        service = ServiceSpec(name="s", url="http://127.0.0.1:1")
        self.decl = Declaration(revision=0, services={"s": service})
        self.loads = 0
        self._subscribers: list[Callable[[Commit], None]] = []
        self._lock = threading.Lock()

    def commit_route(self, i: int) -> None:
        with self._lock:
            route = RouteSpec(name=f"r{i}", paths=[f"/r{i}"], service="s")
            self.decl = replace(
                self.decl,
                revision=self.decl.revision + 1,
                routes=self.decl.routes | {route.name: route},
            )
            revision = self.decl.revision
        for callback in list(self._subscribers):
            callback(Commit(revision))

    def load(self) -> Declaration:
        self.loads += 1
        with self._lock:
            return self.decl

    def load_since(self, previous: Declaration) -> Declaration:
        return self.load()

    def advance(self, previous: Declaration, commits: Sequence[Commit]) -> Declaration:
        raise AssertionError("bare revisions never advance in memory")

    def advance_in_memory(
        self, previous: Declaration, commits: Sequence[Commit]
    ) -> Declaration | None:
        raise AssertionError("bare revisions never advance in memory")

    def subscribe(self, callback: Callable[[Commit], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


async def revision_other_than(cache: SnapshotCache, revision: int | None) -> None:
    """Poll until the cache holds a revision other than `revision` (within 5 s)."""
    deadline = time.monotonic() + 5
    while cache.revision == revision:
        assert time.monotonic() < deadline, f"the cache stayed at revision {revision}"
        await asyncio.sleep(0.005)


async def group_snapshot(cache: SnapshotCache, key: NodeGroup) -> Snapshot:
    """The group's snapshot, once translated (a new group is translated off the loop)."""
    wake = asyncio.Event()
    unwatch = cache.watch(wake)
    try:
        while (snapshot := cache.snapshot(key)) is None:
            await asyncio.wait_for(wake.wait(), 5)
            wake.clear()
        return snapshot
    finally:
        unwatch()


async def test_a_new_group_is_translated_off_the_loop_and_its_streams_woken() -> None:
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await revision_other_than(cache, None)
        assert cache.snapshot(NodeGroup(group="new")) is None  # being built
        snapshot = await group_snapshot(cache, NodeGroup(group="new"))
        assert snapshot.revision == cache.revision
    finally:
        runner.cancel()


async def test_a_thousand_commits_in_a_second_make_a_handful_of_reloads() -> None:
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    key = NodeGroup()
    try:
        await revision_other_than(cache, None)
        await group_snapshot(cache, key)  # a connected group
        loads_before = source.loads

        def burst() -> float:
            started = time.monotonic()
            for i in range(1000):
                source.commit_route(i)
            return time.monotonic() - started

        elapsed = await asyncio.to_thread(burst)
        while cache.revision != 1000:
            await revision_other_than(cache, cache.revision)
        reloads = source.loads - loads_before
        # One reload per cap window at most, plus the last one after the burst.
        assert 1 <= reloads <= elapsed / MAX_DELAY_SECONDS + 3, reloads
        snapshot = await group_snapshot(cache, key)
        assert snapshot.revision == 1000
        (routes,) = snapshot.resources(ROUTE_TYPE).values()
        assert b"/r999" in routes.any.value
    finally:
        runner.cancel()


async def test_a_lone_commit_is_loaded() -> None:
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await revision_other_than(cache, None)
        await asyncio.to_thread(source.commit_route, 1)
        await revision_other_than(cache, 0)
        assert cache.revision == 1
    finally:
        runner.cancel()


def slow_coalescing(monkeypatch: pytest.MonkeyPatch, idle_seconds: float) -> None:
    """A quiet period far longer than any deadline below: only the leading edge is quick."""
    monkeypatch.setattr(cache_module, "QUIET_SECONDS", 60.0)
    monkeypatch.setattr(cache_module, "MAX_DELAY_SECONDS", 120.0)
    monkeypatch.setattr(cache_module, "IDLE_SECONDS", idle_seconds)


async def test_a_commit_to_an_idle_cache_is_loaded_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_coalescing(monkeypatch, idle_seconds=0.0)  # always idle between commits
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await asyncio.wait_for(revision_other_than(cache, None), 5)
        for revision in (1, 2):
            await asyncio.to_thread(source.commit_route, revision)
            await asyncio.wait_for(revision_other_than(cache, revision - 1), 5)
            assert cache.revision == revision
    finally:
        runner.cancel()


async def test_a_commit_right_after_another_waits_for_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_coalescing(monkeypatch, idle_seconds=60.0)  # every commit after the first is a burst
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await asyncio.wait_for(revision_other_than(cache, None), 5)
        await asyncio.to_thread(source.commit_route, 1)  # the leading edge: at once
        await asyncio.wait_for(revision_other_than(cache, 0), 5)
        loads_before = source.loads
        await asyncio.to_thread(source.commit_route, 2)
        # Coalesced: still waiting for the (60 s) quiet period.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(revision_other_than(cache, 1), 1)
        assert source.loads == loads_before
    finally:
        runner.cancel()


class SlowSource(InMemorySource):
    """Each load takes `seconds`: a reload that ends long after its commit."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def load(self) -> Declaration:
        time.sleep(self.seconds)  # the work being modelled, not a wait for something
        return super().load()


async def test_a_lone_commit_right_after_a_slow_reload_is_loaded_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Idle is measured between commits, not from the reload's end: a write every
    # few milliseconds, each after the last one was served, never waits for quiet.
    slow_coalescing(monkeypatch, idle_seconds=0.2)
    source = SlowSource(0.3)
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await asyncio.wait_for(revision_other_than(cache, None), 5)
        await asyncio.to_thread(source.commit_route, 1)
        await asyncio.wait_for(revision_other_than(cache, 0), 5)
        # 0.3 s after commit 1, just after its reload ended: still a lone commit.
        await asyncio.to_thread(source.commit_route, 2)
        await asyncio.wait_for(revision_other_than(cache, 1), 5)  # not the 60 s quiet period
        assert cache.revision == 2
    finally:
        runner.cancel()


class InProcessSource(InMemorySource):
    """Commits heard with their changes, as the admin API's are: applied in memory.
    Records the thread of every apply (the loop's, or a worker's)."""

    def __init__(self) -> None:
        super().__init__()
        self.applied_in: list[int] = []
        self.advances = 0

    def commit_route(self, i: int, followed: bool = False) -> None:
        route = RouteSpec(name=f"r{i}", paths=[f"/r{i}"], service="s")
        with self._lock:
            self.decl = replace(
                self.decl,
                revision=self.decl.revision + 1,
                routes=self.decl.routes | {route.name: route},
            )
            change = Change(Action.CREATE, "route", route.name, None, route)
            commit = Commit(self.decl.revision, (change,), followed=followed)
        for callback in list(self._subscribers):
            callback(commit)

    def advance(self, previous: Declaration, commits: Sequence[Commit]) -> Declaration:
        self.advances += 1
        decl = self.advance_in_memory(previous, commits)
        assert decl is not None
        return decl

    def advance_in_memory(
        self, previous: Declaration, commits: Sequence[Commit]
    ) -> Declaration | None:
        self.applied_in.append(threading.get_ident())
        routes = dict(previous.routes)
        for commit in commits:
            for change in commit.changes or ():
                routes[change.name] = change.after  # type: ignore[assignment]
        return replace(previous, revision=commits[-1].revision, routes=routes)


async def test_a_lone_commit_of_this_process_is_applied_on_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every commit lone, and any measured cost cheap enough: on a loaded machine the
    # commits below may come within the real IDLE_SECONDS, or a build take over 2 ms.
    monkeypatch.setattr(cache_module, "IDLE_SECONDS", 0.0)
    monkeypatch.setattr(cache_module, "INLINE_CPU_SECONDS", 60.0)
    source = InProcessSource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await revision_other_than(cache, None)
        await group_snapshot(cache, NodeGroup())
        for i in (1, 2, 3):  # the first may run in a thread: the cold load's cost is known
            await asyncio.to_thread(source.commit_route, i)
            await revision_other_than(cache, i - 1)
        assert source.applied_in[-1] == threading.get_ident()
        snapshot = await group_snapshot(cache, NodeGroup())
        assert snapshot.revision == 3
    finally:
        runner.cancel()


async def test_a_costly_translation_stays_off_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_module, "INLINE_CPU_SECONDS", 0.0)  # every translation is costly
    source = InProcessSource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await revision_other_than(cache, None)
        await group_snapshot(cache, NodeGroup())
        for i in (1, 2, 3):
            await asyncio.to_thread(source.commit_route, i)
            await revision_other_than(cache, i - 1)
        assert source.advances == 3
        assert threading.get_ident() not in source.applied_in
    finally:
        runner.cancel()


async def test_a_thousand_commits_of_this_process_in_a_second_make_a_handful_of_reloads() -> None:
    source = InProcessSource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    key = NodeGroup()
    try:
        await revision_other_than(cache, None)
        await group_snapshot(cache, key)

        def burst() -> float:
            started = time.monotonic()
            for i in range(1000):
                source.commit_route(i)
            return time.monotonic() - started

        elapsed = await asyncio.to_thread(burst)
        while cache.revision != 1000:
            await revision_other_than(cache, cache.revision)
        reloads = len(source.applied_in)
        assert 1 <= reloads <= elapsed / MAX_DELAY_SECONDS + 3, reloads
        snapshot = await group_snapshot(cache, key)
        assert snapshot.revision == 1000
        (routes,) = snapshot.resources(ROUTE_TYPE).values()
        assert b"/r999" in routes.any.value
    finally:
        runner.cancel()


class CountingStore(Store):
    """A real store that counts how often the cache reads the audit log."""

    audit_reads = 0

    def load_since(self, previous: Declaration) -> Declaration:
        self.audit_reads += 1
        return super().load_since(previous)


async def test_commits_of_this_process_are_applied_without_reading_the_audit_log(
    tmp_path: Path,
) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'cache.db'}")
    store.upgrade()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(store, store.commits))
    try:
        await revision_other_than(cache, None)
        service = ServiceSpec(name="s", url="http://127.0.0.1:1")
        await asyncio.to_thread(store.create, "service", service, "t")
        for i in range(5):
            route = RouteSpec(name=f"r{i}", paths=[f"/r{i}"], service="s")
            await asyncio.to_thread(store.create, "route", route, "t")
        deadline = time.monotonic() + 5
        while cache.revision != 6:
            assert time.monotonic() < deadline, cache.revision
            await revision_other_than(cache, cache.revision)
        assert store.audit_reads == 0
        # A revision heard from elsewhere (here: announced bare) is read from the audit log.
        await asyncio.to_thread(store.delete, "route", "r0", "t")  # in-process: revision 7
        other = CountingStore(store.database_url)
        await asyncio.to_thread(other.delete, "route", "r1", "t")
        store.commits.announce(8)
        while cache.revision != 8:
            await revision_other_than(cache, cache.revision)
        assert store.audit_reads >= 1
        assert cache._declaration == await asyncio.to_thread(store.load)
        other.close()
    finally:
        runner.cancel()
        store.close()


async def test_a_change_wakes_streams_in_batches_so_the_loop_serves_others_meanwhile() -> None:
    """The admin API shares the loop: the write's HTTP response must not wait until
    every stream of a large fleet has been woken and has sent its response."""
    source = InMemorySource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    wakes = [asyncio.Event() for _ in range(WAKE_BATCH * 10)]
    try:
        await revision_other_than(cache, None)
        revision = cache.revision
        for wake in wakes:
            cache.watch(wake)
        woken_when_other_ran: list[int] = []

        async def other() -> None:
            # Stands for any task ready while the cache wakes streams. The cache keeps
            # its watchers in a set, so which stream's batch comes first is arbitrary.
            while not any(w.is_set() for w in wakes):
                await asyncio.sleep(0)
            woken_when_other_ran.append(sum(w.is_set() for w in wakes))

        task = asyncio.create_task(other())
        source.commit_route(1)
        await asyncio.wait_for(task, 5)
        await revision_other_than(cache, revision)
        assert woken_when_other_ran[0] < len(wakes)
        deadline = time.monotonic() + 5
        while not all(w.is_set() for w in wakes):
            assert time.monotonic() < deadline, "not every stream was woken"
            await asyncio.sleep(0.005)
    finally:
        runner.cancel()


async def test_a_commit_other_writes_follow_waits_for_quiet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow_coalescing(monkeypatch, idle_seconds=0.0)  # only `followed` makes it a burst
    source = InProcessSource()
    cache = SnapshotCache()
    runner = asyncio.create_task(cache.run(source, source))
    try:
        await asyncio.wait_for(revision_other_than(cache, None), 5)
        await asyncio.to_thread(source.commit_route, 1, True)
        with pytest.raises(TimeoutError):  # coalesced: waiting for the 60 s quiet period
            await asyncio.wait_for(revision_other_than(cache, 0), 1)
    finally:
        runner.cancel()
