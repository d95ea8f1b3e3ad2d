"""The snapshot cache: the current declaration, translated once per node group.

Streams never translate. They ask the cache for their group's snapshot and wait on
`changed()`; the cache reloads the declaration when the store's change feed says
a revision was committed, translates it off the event loop, and wakes every
stream. Reloads coalesce: while one runs, any number of commits produce one more
reload of the newest revision, so a burst of writes yields a handful of pushes.
"""

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from envoy.config.core.v3.base_pb2 import Node

from turnout.models.declaration import Declaration
from turnout.xds.memo import TranslationMemo
from turnout.xds.metrics import RELOADS
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    PackedResource,
    Snapshot,
    build_snapshot,
    pack,
)
from turnout.xds.translate import ListenerOptions, build_listener

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Coalescing (DESIGN.md "Bursts"): a reload starts once the feed has been quiet for
# QUIET_SECONDS, or at the latest MAX_DELAY_SECONDS after the first change it covers.
# Istio uses 100 ms / 10 s; Turnout's writes are explicit operator actions, so it
# favours latency: a single write waits 5 ms, a stream of writes reloads 10 times a
# second.
QUIET_SECONDS = 0.005
MAX_DELAY_SECONDS = 0.1
_COMMIT_TIMES_KEPT = 4096

DEFAULT_LISTENER_PORT = 10000
DEFAULT_LISTENER_ADDRESS = "0.0.0.0"


class DeclarationSource(Protocol):
    """What the cache needs from the store (`turnout.models.store.Store` is one)."""

    def load(self) -> Declaration: ...

    def load_since(self, previous: Declaration) -> Declaration: ...

    def subscribe(self, callback: Callable[[int], None]) -> Callable[[], None]: ...


def node_key(node: Node) -> ListenerOptions:
    """The node group a proxy belongs to: its node cluster and listener address."""
    fields = node.metadata.fields
    port = DEFAULT_LISTENER_PORT
    if "listener_port" in fields:
        value = fields["listener_port"]
        raw = value.number_value if value.HasField("number_value") else value.string_value
        port = int(raw)
    address = DEFAULT_LISTENER_ADDRESS
    if "listener_address" in fields:
        address = fields["listener_address"].string_value
    return ListenerOptions(address=address, port=port, group=node.cluster or "default")


@dataclass(frozen=True)
class _Shared:
    """Resources every group shares at one revision."""

    clusters: list[PackedResource]
    endpoints: list[PackedResource]
    eds_cluster_names: frozenset[str]
    extension_configs: list[PackedResource]


def _build_shared(decl: Declaration, memo: TranslationMemo) -> _Shared:
    results = memo.services(decl)
    endpoints = [r.endpoints for r in results if r.endpoints is not None]
    return _Shared(
        [r.cluster for r in results],
        endpoints,
        frozenset(e.name for e in endpoints),
        [memo.api_key_auth_config(decl)],
    )


def _build_group(
    decl: Declaration,
    shared: _Shared,
    key: ListenerOptions,
    previous: Snapshot | None,
    memo: TranslationMemo,
) -> Snapshot:
    parts = memo.route_parts(decl, key)
    routes = parts.full
    packed = {
        CLUSTER_TYPE: shared.clusters,
        ENDPOINT_TYPE: shared.endpoints,
        EXTENSION_CONFIG_TYPE: shared.extension_configs,
        LISTENER_TYPE: [pack(build_listener(key))],
        ROUTE_TYPE: [routes],
    }
    refs = {routes.name: referenced_services(decl, key.group)}
    return build_snapshot(
        decl.revision, packed, shared.eds_cluster_names, refs, previous, {routes.name: parts}
    )


def referenced_services(decl: Declaration, group: str) -> frozenset[str]:
    """The clusters a group's route configuration sends traffic to."""
    splits = {split.route: split for split in decl.splits.values()}
    names: set[str] = set()
    for route in decl.routes.values():
        if group not in route.groups:
            continue
        split = splits.get(route.name)
        if split is None:
            names.add(route.service)
        else:
            names.update(t.service for t in split.targets if t.weight > 0)
            names.update(pin.service for pin in split.pins)
    return frozenset(names)


class SnapshotCache:
    """Current snapshots by node group; woken streams read them."""

    def __init__(self) -> None:
        self._declaration: Declaration | None = None
        self._shared: _Shared | None = None
        self._snapshots: dict[ListenerOptions, Snapshot] = {}
        self._changed = asyncio.Condition()
        self._watchers: set[asyncio.Event] = set()
        self._dirty = asyncio.Event()
        self._committed_at: dict[int, float] = {}
        self._memo = TranslationMemo()
        self._memo_lock = threading.Lock()
        self._building: dict[ListenerOptions, asyncio.Task[None]] = {}

    @property
    def revision(self) -> int | None:
        return self._declaration.revision if self._declaration else None

    def snapshot(self, key: ListenerOptions) -> Snapshot | None:
        """The group's current snapshot; for a new group None, while it is translated
        off the event loop (its streams are woken when it is ready)."""
        decl, shared = self._declaration, self._shared
        if decl is None or shared is None:
            return None
        snap = self._snapshots.get(key)
        if snap is not None and snap.revision == decl.revision:
            return snap
        if key not in self._building:
            self._building[key] = asyncio.create_task(self._build_new_group(key, decl, shared))
        return None

    async def _build_new_group(
        self, key: ListenerOptions, decl: Declaration, shared: _Shared
    ) -> None:
        try:
            snap = await asyncio.to_thread(self._locked, _build_group, decl, shared, key, None)
            if self._declaration is decl:
                self._snapshots[key] = snap
            elif key not in self._snapshots:
                self._snapshots[key] = snap  # set_declaration will bring it up to date
        finally:
            del self._building[key]
        for wake in self._watchers:
            wake.set()

    def _locked(self, build: Callable[..., _T], *args: object) -> _T:
        """Run a translation with the memo to itself (builds run in worker threads)."""
        with self._memo_lock:
            return build(*args, self._memo)

    def watch(self, wake: asyncio.Event) -> Callable[[], None]:
        """Set `wake` whenever the cache holds a new revision; returns the undo."""
        self._watchers.add(wake)
        return lambda: self._watchers.discard(wake)

    async def wait_changed(self, revision: int | None) -> None:
        """Return once the cache holds a revision other than `revision`."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.revision != revision)

    async def set_declaration(self, decl: Declaration) -> None:
        """Translate `decl` for every known group (off the loop) and wake streams."""
        keys = list(self._snapshots)
        previous = dict(self._snapshots)

        def build(memo: TranslationMemo) -> tuple[_Shared, dict[ListenerOptions, Snapshot]]:
            shared = _build_shared(decl, memo)
            snaps = {k: _build_group(decl, shared, k, previous.get(k), memo) for k in keys}
            memo.forget_routes_except(decl)
            return shared, snaps

        shared, snaps = await asyncio.to_thread(self._locked, build)
        self._declaration, self._shared = decl, shared
        self._snapshots.update(snaps)
        for wake in self._watchers:
            wake.set()
        async with self._changed:
            self._changed.notify_all()

    def committed(self, revision: int) -> None:
        """Called on the loop when the store committed `revision`."""
        self._committed_at.setdefault(revision, time.monotonic())
        if len(self._committed_at) > _COMMIT_TIMES_KEPT:
            del self._committed_at[next(iter(self._committed_at))]
        self._dirty.set()

    def commit_time(self, revision: int) -> float | None:
        """`time.monotonic()` when this process learnt of `revision`'s commit."""
        return self._committed_at.get(revision)

    async def run(self, source: DeclarationSource) -> None:
        """Follow the store's change feed until cancelled."""
        loop = asyncio.get_running_loop()
        unsubscribe = source.subscribe(lambda rev: loop.call_soon_threadsafe(self.committed, rev))
        try:
            self._dirty.set()
            while True:
                await self._dirty.wait()
                await self._quiet_period(loop)
                try:
                    previous = self._declaration
                    if previous is None:
                        decl = await asyncio.to_thread(source.load)
                    else:
                        decl = await asyncio.to_thread(source.load_since, previous)
                    if decl.revision != self.revision:
                        await self.set_declaration(decl)
                        RELOADS.inc()
                except Exception:
                    log.exception("reloading the declaration failed; keeping the last one")
        finally:
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
