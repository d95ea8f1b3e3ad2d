"""Which proxies are connected and where each stands: the `ProxyStatusSource`.

Streams register here while they live. The admin API reads `proxies()` from its
own threads; the registry only ever replaces whole dict entries on the event loop
and readers copy before iterating, so no lock is needed under the GIL.
"""

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from turnout.models.proxy_status import ProxyStatus, QuarantinedResource, TypeStatus
from turnout.xds import metrics
from turnout.xds.groups import NodeGroup
from turnout.xds.nack import NackLog
from turnout.xds.snapshot import TYPE_ORDER, Snapshot
from turnout.xds.stream import StreamState


@dataclass
class ConnectedProxy:
    stream_id: int
    node_id: str
    node_group: NodeGroup
    state: StreamState
    connected_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    revision: int | None = None
    """The newest revision the proxy acknowledged in full."""
    snapshot: Snapshot | None = None
    """The snapshot the stream last worked from."""
    nack_log: NackLog = field(default_factory=lambda: NackLog(time.monotonic))
    """Limits how often this stream's NACKs are logged."""
    quarantine_counted: frozenset[tuple[str, str, str]] = frozenset()
    """(type URL, kind, name) of what this stream last counted in the quarantine gauges."""

    def count_quarantine(self, closing: bool = False) -> None:
        """Bring the quarantine gauges up to date with this stream (out of them when
        closing). Runs on the event loop only."""
        now = frozenset(
            () if closing else ((q.type_url, q.kind, q.name) for q in self.state.quarantine())
        )
        if now == self.quarantine_counted:
            return
        for entity in now - self.quarantine_counted:
            metrics.QUARANTINED.labels(entity[0]).inc()
            _HOLDERS[entity] += 1
            metrics.QUARANTINED_ENTITY.labels(*entity).set(_HOLDERS[entity])
        for entity in self.quarantine_counted - now:
            metrics.QUARANTINED.labels(entity[0]).dec()
            _HOLDERS[entity] -= 1
            if _HOLDERS[entity] > 0:
                metrics.QUARANTINED_ENTITY.labels(*entity).set(_HOLDERS[entity])
            else:
                del _HOLDERS[entity]
                metrics.QUARANTINED_ENTITY.remove(*entity)
        self.quarantine_counted = now


_HOLDERS: Counter[tuple[str, str, str]] = Counter()
"""Streams holding each quarantined entity, across the process (for the gauge)."""


class ProxyRegistry:
    def __init__(self) -> None:
        self._proxies: dict[int, ConnectedProxy] = {}

    def add(self, proxy: ConnectedProxy) -> None:
        self._proxies[proxy.stream_id] = proxy

    def remove(self, stream_id: int) -> None:
        self._proxies.pop(stream_id, None)

    def __len__(self) -> int:
        return len(self._proxies)

    def proxies(self) -> list[ProxyStatus]:
        # Read on the admin's threads while the loop may change a stream: a dict
        # "changed size during iteration" just means that proxy is read again.
        out = [_status(proxy) for proxy in list(self._proxies.values())]
        return sorted(out, key=lambda p: (p.node_id, p.connected_since))

    def proxy_config(self, node_id: str) -> dict[str, list[dict[str, Any]]] | None:
        streams = [p for p in list(self._proxies.values()) if p.node_id == node_id]
        if not streams:
            return None
        newest = max(streams, key=lambda p: p.connected_since)
        return {
            type_url: [MessageToDict(r.any, preserving_proto_field_name=True) for r in sent]
            for type_url, sent in newest.state.resources_sent().items()
        }


def _status(proxy: ConnectedProxy) -> ProxyStatus:
    for _ in range(10):
        try:
            return _read_status(proxy)
        except RuntimeError:
            continue
    return _read_status(proxy)


def _read_status(proxy: ConnectedProxy) -> ProxyStatus:
    subs = dict(proxy.state.subscriptions)
    types = []
    for type_url in TYPE_ORDER:
        sub = subs.get(type_url)
        if sub is None:
            continue
        state = proxy.state.type_state(sub, proxy.snapshot) if proxy.snapshot else None
        types.append(
            TypeStatus(
                type_url=type_url,
                state=state.value if state else "STALE",
                version_sent=sub.version_sent,
                version_acked=sub.version_acked,
                last_nack=sub.last_nack,
                nacked_version=sub.nacked_version,
            )
        )
    return ProxyStatus(
        node_id=proxy.node_id,
        node_cluster=proxy.node_group.group,
        connected_since=proxy.connected_since,
        xds="delta" if proxy.state.delta else "sotw",
        listener_port=proxy.node_group.port,
        revision=proxy.revision,
        types=types,
        quarantined=[
            QuarantinedResource(type_url=q.type_url, kind=q.kind, name=q.name, message=q.message)
            for q in proxy.state.quarantine()
        ],
    )
