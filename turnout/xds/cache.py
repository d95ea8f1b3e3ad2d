"""The snapshot cache: the current declaration, translated once per node group.

Streams never translate. They ask the cache for their group's snapshot and wait on
`changed()`; the cache follows the change feed (`turnout.storage.feed`), brings the
declaration up to the newest revision, translates it off the event loop, and wakes
every stream. Commits of this process arrive with their changes, which the cache
applies (`DeclarationSource.advance`); only a revision heard from elsewhere (another
replica, the safety poll) makes it read what changed from the audit log
(`load_since`). Reloads coalesce: while one runs, any number of commits produce one
more reload of the newest revision, so a burst of writes yields a handful of pushes.

A lone commit to an idle cache is applied and translated right where the feed
delivers it, on the event loop, when that is cheap (a few changes, no database
read, the last translation took under `INLINE_CPU_SECONDS`): no thread hops, and
the streams are woken before the writer's HTTP response is sent, so Envoy applies
the change while the response goes out (issue 17). Cold, large or slow work stays
in worker threads.

Streams `join` their node group and `leave` it; groups without streams are
evicted after a grace period, and their number is capped (`turnout.xds.groups`),
so every change is translated only for groups that proxies use.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from turnout.models.change import ChangeFeed, Commit
from turnout.models.declaration import Declaration
from turnout.xds.groups import GroupBook, NodeGroup, TooManyGroups
from turnout.xds.memo import SharedResources, TranslationMemo
from turnout.xds.metrics import GROUPS, GROUPS_REFUSED, RELOADS
from turnout.xds.snapshot import Snapshot, build_snapshot
from turnout.xds.translate.pipeline import translate

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Coalescing: a commit heard IDLE_SECONDS or more after the one before it, with no
# other write of this process under way (`Commit.followed`), is loaded at once: a lone
# write pays no wait, however soon after the last reload it comes (a rule on the
# reload's end made a write every ~10 ms wait QUIET_SECONDS on a quiet machine,
# issue 17). Commits that keep arriving are coalesced: the next reload
# starts once the feed has been quiet for QUIET_SECONDS, or at the latest
# MAX_DELAY_SECONDS after the first change it covers, so a burst of writes reloads
# about 1/MAX_DELAY_SECONDS times a second and the last state is always loaded.
# Istio uses 100 ms / 10 s; Turnout's writes are explicit operator actions, so it
# favours latency.
QUIET_SECONDS = 0.005
MAX_DELAY_SECONDS = 0.1
IDLE_SECONDS = QUIET_SECONDS
# Inline reloads (see the module docstring): at most this many changes, and only
# while the last translation's CPU time stayed under INLINE_CPU_SECONDS (a route
# added among 1,000 costs ~0.7 ms, among 10,000 ~7 ms, which then runs in a thread).
INLINE_MAX_CHANGES = 16
INLINE_CPU_SECONDS = 0.002
_COMMIT_TIMES_KEPT = 4096
_PENDING_KEPT = 4096
"""Commits held for the next reload; beyond it the oldest go, and the reload reads
the audit log instead (`load_since`)."""

WAKE_BATCH = 100
"""Streams woken per turn of the event loop after a change (`_wake_streams`)."""

# Node groups: every change is translated
# for every group, so their number bounds the cost of a change. A group whose last
# stream closed is kept GROUP_GRACE_SECONDS (its proxies usually reconnect at once);
# at MAX_GROUPS the idle groups go first, and a new group is refused only when every
# group has a live stream. Under mTLS one certificate may hold streams in at most
# MAX_GROUPS_PER_IDENTITY groups.
MAX_GROUPS = 256
MAX_GROUPS_PER_IDENTITY = 16
GROUP_GRACE_SECONDS = 60.0


class DeclarationSource(Protocol):
    """What the cache needs from the store (`turnout.storage.store.Store` is one)."""

    def load(self) -> Declaration: ...

    def load_since(self, previous: Declaration) -> Declaration: ...

    def advance(self, previous: Declaration, commits: Sequence[Commit]) -> Declaration: ...

    def advance_in_memory(
        self, previous: Declaration, commits: Sequence[Commit]
    ) -> Declaration | None:
        """`advance` if it needs no database read (then it is cheap and never blocks),
        else None."""
        ...


def _build_group(
    decl: Declaration, node_group: NodeGroup, previous: Snapshot | None, memo: TranslationMemo
) -> Snapshot:
    t = translate(decl, node_group, memo)
    refs, parts = t.route_refs, t.route_parts
    return build_snapshot(t.revision, t.packed, t.shared.eds_cluster_names, refs, previous, parts)


class SnapshotCache:
    """Current snapshots by node group; woken streams read them."""

    def __init__(
        self,
        max_groups: int = MAX_GROUPS,
        max_groups_per_identity: int = MAX_GROUPS_PER_IDENTITY,
        group_grace_seconds: float = GROUP_GRACE_SECONDS,
    ) -> None:
        self._groups = GroupBook(max_groups, max_groups_per_identity, group_grace_seconds)
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._declaration: Declaration | None = None
        self._shared: SharedResources | None = None
        self._snapshots: dict[NodeGroup, Snapshot] = {}
        self._watchers: set[asyncio.Event] = set()
        self._dirty = asyncio.Event()
        self._committed_at: dict[int, float] = {}
        self._pending: dict[int, Commit] = {}
        """Commits newer than the declaration, by revision, for the next reload."""
        self._heard = 0
        """The newest revision the feed announced."""
        self._memo = TranslationMemo()
        self._memo_lock = threading.Lock()
        self._building: dict[NodeGroup, asyncio.Task[None]] = {}
        self._source: DeclarationSource | None = None
        """What `run` follows; None until it runs."""
        self._parked = False
        """`run` waits for a commit with no reload in flight and no coalescing window open."""
        self._heard_at = -float("inf")
        """`time.monotonic()` when the newest revision was first heard."""
        self._burst = False
        """The newest revision came within IDLE_SECONDS of the one before, or other
        writes were under way: coalesce."""
        self._build_cpu = float("inf")
        """CPU seconds of the last translation (cold at first): what an inline reload
        would cost, about."""

    @property
    def revision(self) -> int | None:
        return self._declaration.revision if self._declaration else None

    def snapshot(self, node_group: NodeGroup) -> Snapshot | None:
        """The group's current snapshot; for a new group None, while it is translated
        off the event loop (its streams are woken when it is ready)."""
        decl, shared = self._declaration, self._shared
        if decl is None or shared is None:
            return None
        snap = self._snapshots.get(node_group)
        if snap is not None and snap.revision == decl.revision:
            return snap
        if node_group not in self._building:
            self._building[node_group] = asyncio.create_task(
                self._build_new_group(node_group, decl)
            )
        return None

    async def _build_new_group(self, node_group: NodeGroup, decl: Declaration) -> None:
        def build(memo: TranslationMemo) -> Snapshot:
            snap = _build_group(decl, node_group, None, memo)
            memo.forget_layouts_except(groups)
            return snap

        groups = self._groups_in_use() | {node_group.group}
        try:
            snap = await asyncio.to_thread(self._locked, build)
            if self._declaration is decl:
                self._snapshots[node_group] = snap
            elif node_group not in self._snapshots:
                self._snapshots[node_group] = snap  # set_declaration will bring it up to date
        finally:
            del self._building[node_group]
        self._wake_streams()

    # --- node groups ------------------------------------------------------------------

    def join(self, node_group: NodeGroup, identity: str | None = None) -> None:
        """A stream of group `node_group` started (`identity`: its mTLS certificate's
        fingerprint, None without mTLS). Raise `TooManyGroups` if it may not."""
        try:
            evicted = self._groups.join(node_group, identity, self._evictable)
        except TooManyGroups:
            GROUPS_REFUSED.inc()
            raise
        for old in evicted:
            self._snapshots.pop(old, None)
        GROUPS.set(len(self._groups))

    def leave(self, node_group: NodeGroup, identity: str | None = None) -> None:
        """A stream that joined `node_group` ended; its group may be evicted after the grace."""
        self._groups.leave(node_group, identity)
        self._schedule_sweep(self._groups.grace_seconds)

    def groups(self) -> int:
        """Node groups that have streams or are within their grace period."""
        return len(self._groups)

    def cluster_names(self) -> frozenset[str]:
        """The clusters of the current declaration (every group has the same)."""
        shared = self._shared
        return frozenset(r.name for r in shared.clusters) if shared is not None else frozenset()

    def translated(self) -> set[NodeGroup]:
        """The node groups the cache holds snapshots of (re-translated on each change)."""
        return set(self._snapshots)

    def _schedule_sweep(self, delay: float) -> None:
        if self._sweep_handle is None:
            loop = asyncio.get_running_loop()
            self._sweep_handle = loop.call_later(delay, self._sweep)

    def _sweep(self) -> None:
        self._sweep_handle = None
        due, next_in = self._groups.sweep(self._evictable)
        for node_group in due:
            self._snapshots.pop(node_group, None)
        if due:
            log.info("evicted %d idle node group(s)", len(due))
        GROUPS.set(len(self._groups))
        if next_in is not None:
            self._schedule_sweep(next_in)

    def _evictable(self, node_group: NodeGroup) -> bool:
        return node_group not in self._building  # a build in flight would store it again

    def _groups_in_use(self) -> set[str]:
        """Group names whose route layout the memo should keep."""
        return {k.group for k in self._snapshots} | {k.group for k in self._building}

    def _locked(self, build: Callable[..., _T], *args: object) -> _T:
        """Run a translation with the memo to itself (builds run in worker threads)."""
        with self._memo_lock:
            return build(*args, self._memo)

    def watch(self, wake: asyncio.Event) -> Callable[[], None]:
        """Set `wake` whenever the cache holds a new revision; returns the undo."""
        self._watchers.add(wake)
        return lambda: self._watchers.discard(wake)

    async def set_declaration(self, decl: Declaration) -> None:
        """Translate `decl` for every known group (off the loop) and wake streams."""
        shared, snaps = await asyncio.to_thread(self._locked, self._translation(decl))
        self._publish(decl, shared, snaps)

    def _translation(
        self, decl: Declaration
    ) -> Callable[[TranslationMemo], tuple[SharedResources, dict[NodeGroup, Snapshot]]]:
        """The work of translating `decl` for every known group, to run under the memo
        lock; it records its CPU time in `_build_cpu`."""
        keys = list(self._snapshots)
        previous = dict(self._snapshots)
        groups = self._groups_in_use()

        def build(
            memo: TranslationMemo,
        ) -> tuple[SharedResources, dict[NodeGroup, Snapshot]]:
            started = time.thread_time()
            shared = memo.shared(decl)
            snaps = {k: _build_group(decl, k, previous.get(k), memo) for k in keys}
            memo.forget_routes_except(decl)
            memo.forget_layouts_except(groups)
            self._build_cpu = time.thread_time() - started
            return shared, snaps

        return build

    def _publish(
        self, decl: Declaration, shared: SharedResources, snaps: dict[NodeGroup, Snapshot]
    ) -> None:
        self._declaration, self._shared = decl, shared
        # A group evicted while this build ran stays evicted.
        self._snapshots.update(
            (k, snap) for k, snap in snaps.items() if k in self._snapshots or k in self._groups
        )
        self._wake_streams()

    def _wake_streams(self, watchers: list[asyncio.Event] | None = None) -> None:
        """Wake every stream, WAKE_BATCH at a time with a turn of the loop between
        batches. The admin API shares this loop: woken all at once, thousands of
        streams would each send their response before the write that caused it gets
        its HTTP response out (at 5,000 streams, about a second later). Not a
        coroutine: an inline reload (`committed`) wakes them too."""
        pending = list(self._watchers) if watchers is None else watchers
        for wake in pending[:WAKE_BATCH]:
            wake.set()
        if len(pending) > WAKE_BATCH:
            asyncio.get_running_loop().call_soon(self._wake_streams, pending[WAKE_BATCH:])

    def committed(self, commit: Commit) -> None:
        """Called on the loop when the feed delivers `commit`."""
        revision = commit.revision
        now = time.monotonic()
        self._committed_at.setdefault(revision, now)
        if len(self._committed_at) > _COMMIT_TIMES_KEPT:
            del self._committed_at[next(iter(self._committed_at))]
        if revision > self._heard:
            self._burst = commit.followed or now - self._heard_at < IDLE_SECONDS
            self._heard_at = now
        self._heard = max(self._heard, revision)
        if revision > (self.revision or 0):
            # A revision may be heard twice (its NOTIFY, then its commit): the changes win.
            if commit.changes is not None or revision not in self._pending:
                self._pending[revision] = commit
            if len(self._pending) > _PENDING_KEPT:
                del self._pending[min(self._pending)]  # a gap: the reload reads the audit log
        if self._parked and not self._dirty.is_set() and self._reload_inline():
            return
        self._dirty.set()

    def _reload_inline(self) -> bool:
        """Apply and translate the pending commits here, on the loop, if the cache is
        idle and that is cheap (see the module docstring); False if `run` must."""
        source, previous = self._source, self._declaration
        if self._burst:
            return False  # commits keep coming: `run` coalesces them
        if source is None or previous is None or self._build_cpu > INLINE_CPU_SECONDS:
            return False
        commits = self._commits_after(previous.revision)
        if not commits or sum(len(c.changes or ()) for c in commits) > INLINE_MAX_CHANGES:
            return False
        if not self._memo_lock.acquire(blocking=False):
            return False  # a new group is being translated in a thread
        try:
            started = time.thread_time()
            decl = source.advance_in_memory(previous, commits)
            if decl is None:
                return False  # it needs the database: a worker thread reads it
            shared, snaps = self._translation(decl)(self._memo)
            self._build_cpu = time.thread_time() - started  # the apply included
        except Exception:
            log.exception("applying a commit failed; keeping the last declaration")
            return True  # as in `run`: the next commit tries again with every one pending
        finally:
            self._memo_lock.release()
        self._publish(decl, shared, snaps)
        RELOADS.inc()
        self._pending = {r: c for r, c in self._pending.items() if r > decl.revision}
        return True

    def _commits_after(self, revision: int) -> list[Commit] | None:
        """Every commit after `revision` up to the newest heard, if each came with its
        changes (this process made them all); None if any must be read from the audit log."""
        wanted = range(revision + 1, self._heard + 1)
        if len(wanted) > len(self._pending):
            return None
        commits = [self._pending.get(r) for r in wanted]
        if any(c is None or c.changes is None for c in commits):
            return None
        return commits  # type: ignore[return-value]

    async def _reload(self, source: DeclarationSource) -> Declaration:
        previous = self._declaration
        if previous is None:
            return await asyncio.to_thread(source.load)
        commits = self._commits_after(previous.revision)
        if commits is None:
            return await asyncio.to_thread(source.load_since, previous)
        if not commits:
            return previous
        return await asyncio.to_thread(source.advance, previous, commits)

    def commit_time(self, revision: int) -> float | None:
        """`time.monotonic()` when this process learnt of `revision`'s commit."""
        return self._committed_at.get(revision)

    async def run(self, source: DeclarationSource, feed: ChangeFeed) -> None:
        """Follow `feed`, reading from `source`, until cancelled."""
        loop = asyncio.get_running_loop()
        self._source = source
        unsubscribe = feed.subscribe(lambda c: loop.call_soon_threadsafe(self.committed, c))
        try:
            self._dirty.set()
            while True:
                self._parked = True
                try:
                    await self._dirty.wait()
                finally:
                    self._parked = False

                if self._burst:
                    await self._quiet_period(loop)  # changes keep coming: coalesce
                else:
                    self._dirty.clear()  # a lone commit: the leading edge loads at once
                try:
                    decl = await self._reload(source)
                    if decl.revision != self.revision:
                        await self.set_declaration(decl)
                        RELOADS.inc()
                    self._pending = {r: c for r, c in self._pending.items() if r > decl.revision}
                except Exception:
                    log.exception("reloading the declaration failed; keeping the last one")
        finally:
            self._source = None
            unsubscribe()

    async def _quiet_period(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = loop.time() + MAX_DELAY_SECONDS
        while True:
            self._dirty.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(self._dirty.wait(), min(QUIET_SECONDS, remaining))
            except TimeoutError:
                return
