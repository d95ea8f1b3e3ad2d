"""The snapshot cache: the current declaration, translated once per node group.

Streams never translate. They ask the cache for their group's snapshot and wait on
`changed()`; the cache reloads the declaration when the store's change feed says
a revision was committed, translates it off the event loop, and wakes every
stream. Reloads coalesce: while one runs, any number of commits produce one more
reload of the newest revision, so a burst of writes yields a handful of pushes.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from envoy.config.core.v3.base_pb2 import Node
from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.xds.snapshot import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    PackedResource,
    Snapshot,
    build_snapshot,
    pack,
)
from turnout.xds.translate import (
    ListenerOptions,
    build_clusters,
    build_endpoints,
    build_listener,
    build_route_configuration,
    check_consistent,
)

log = logging.getLogger(__name__)

DEFAULT_LISTENER_PORT = 10000
DEFAULT_LISTENER_ADDRESS = "0.0.0.0"


class DeclarationSource(Protocol):
    """What the cache needs from the store (`turnout.models.store.Store` is one)."""

    def load(self) -> Declaration: ...

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

    clusters: list[Message]
    endpoints: list[Message]
    packed_clusters: list[PackedResource]
    packed_endpoints: list[PackedResource]
    eds_cluster_names: frozenset[str]


def _build_shared(decl: Declaration) -> _Shared:
    clusters = build_clusters(decl)
    endpoints = build_endpoints(decl)
    return _Shared(
        clusters,
        endpoints,
        [pack(c) for c in clusters],
        [pack(e) for e in endpoints],
        frozenset(e.cluster_name for e in endpoints),
    )


def _build_group(
    decl: Declaration, shared: _Shared, key: ListenerOptions, previous: Snapshot | None
) -> Snapshot:
    listener = build_listener(key)
    routes = build_route_configuration(decl, key)
    check_consistent(
        {
            CLUSTER_TYPE: shared.clusters,
            ENDPOINT_TYPE: shared.endpoints,
            LISTENER_TYPE: [listener],
            ROUTE_TYPE: [routes],
        }
    )
    packed = {
        CLUSTER_TYPE: shared.packed_clusters,
        ENDPOINT_TYPE: shared.packed_endpoints,
        LISTENER_TYPE: [pack(listener)],
        ROUTE_TYPE: [pack(routes)],
    }
    return build_snapshot(decl.revision, packed, shared.eds_cluster_names, previous)


class SnapshotCache:
    """Current snapshots by node group; woken streams read them."""

    def __init__(self) -> None:
        self._declaration: Declaration | None = None
        self._shared: _Shared | None = None
        self._snapshots: dict[ListenerOptions, Snapshot] = {}
        self._changed = asyncio.Condition()
        self._dirty = asyncio.Event()

    @property
    def revision(self) -> int | None:
        return self._declaration.revision if self._declaration else None

    def snapshot(self, key: ListenerOptions) -> Snapshot | None:
        """The group's snapshot, translated now if this group is new."""
        if self._declaration is None or self._shared is None:
            return None
        snap = self._snapshots.get(key)
        if snap is None or snap.revision != self._declaration.revision:
            snap = _build_group(self._declaration, self._shared, key, snap)
            self._snapshots[key] = snap
        return snap

    async def wait_changed(self, revision: int | None) -> None:
        """Return once the cache holds a revision other than `revision`."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.revision != revision)

    async def set_declaration(self, decl: Declaration) -> None:
        """Translate `decl` for every known group (off the loop) and wake streams."""
        keys = list(self._snapshots)
        previous = dict(self._snapshots)

        def build() -> tuple[_Shared, dict[ListenerOptions, Snapshot]]:
            shared = _build_shared(decl)
            snaps = {k: _build_group(decl, shared, k, previous.get(k)) for k in keys}
            return shared, snaps

        shared, snaps = await asyncio.to_thread(build)
        self._declaration, self._shared = decl, shared
        self._snapshots.update(snaps)
        async with self._changed:
            self._changed.notify_all()

    def mark_dirty(self) -> None:
        """Called on the loop when the store committed a revision."""
        self._dirty.set()

    async def run(self, source: DeclarationSource) -> None:
        """Follow the store's change feed until cancelled."""
        loop = asyncio.get_running_loop()
        unsubscribe = source.subscribe(lambda _rev: loop.call_soon_threadsafe(self.mark_dirty))
        try:
            self.mark_dirty()
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                try:
                    decl = await asyncio.to_thread(source.load)
                    if decl.revision != self.revision:
                        await self.set_declaration(decl)
                except Exception:
                    log.exception("reloading the declaration failed; keeping the last one")
        finally:
            unsubscribe()
