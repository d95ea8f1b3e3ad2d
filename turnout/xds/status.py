"""Which proxies are connected and where each stands: the `ProxyStatusSource`.

Streams register here while they live. The admin API reads `proxies()` from its
own threads; the registry only ever replaces whole dict entries on the event loop
and readers copy before iterating, so no lock is needed under the GIL.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from turnout.models.proxy_status import ProxyStatus, TypeStatus
from turnout.xds.snapshot import TYPE_ORDER
from turnout.xds.stream import StreamState
from turnout.xds.translate import ListenerOptions


@dataclass
class ConnectedProxy:
    stream_id: int
    node_id: str
    key: ListenerOptions
    state: StreamState
    connected_since: datetime = field(default_factory=lambda: datetime.now(UTC))
    revision: int | None = None
    """The newest revision the proxy acknowledged in full."""


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
        out = []
        for proxy in list(self._proxies.values()):
            subs = dict(proxy.state.subscriptions)
            types = [
                TypeStatus(
                    type_url=type_url,
                    version_sent=sub.version_sent,
                    version_acked=sub.version_acked,
                    last_nack=sub.last_nack,
                    nacked_version=sub.nacked_version,
                )
                for type_url in TYPE_ORDER
                if (sub := subs.get(type_url)) is not None
            ]
            out.append(
                ProxyStatus(
                    node_id=proxy.node_id,
                    node_cluster=proxy.key.group,
                    connected_since=proxy.connected_since,
                    listener_port=proxy.key.port,
                    revision=proxy.revision,
                    types=types,
                )
            )
        return sorted(out, key=lambda p: (p.node_id, p.connected_since))
