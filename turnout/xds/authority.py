"""Who may report load: the identities that hold a live ADS stream.

A proxy's ADS stream `open`s its identity (node id, node cluster and, under mTLS,
its certificate's fingerprint) here and `close`s it when it ends; the load
reporting service (`turnout.xds.lrs`) accepts reports only for an identity that is
open, and only for the clusters of that stream's snapshot.

With several replicas, Envoy may open its LRS stream to another replica than its
ADS stream (the bootstrap lists every replica in one cluster). `elsewhere` then
asks whether another replica holds an ADS stream for the node (id and cluster, as
the replicas publish them; no certificate, so under mTLS only the allow-list
check of the LRS stream itself applies), rechecked every RECHECK_SECONDS; such a
node may report for the declaration's clusters (`all_clusters`), which every
group shares.

Used on the event loop only; `elsewhere` may block and runs in a worker thread.
"""

import asyncio
import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

RECHECK_SECONDS = 5.0
_POLL_ELSEWHERE_SECONDS = 0.5


@dataclass(frozen=True)
class NodeIdentity:
    """Who a stream claims to be: the same on a proxy's ADS and LRS streams."""

    node_id: str
    node_cluster: str
    certificate: str | None
    """SHA-256 of the peer's certificate under mTLS; None without."""


def certificate_fingerprint(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """SHA-256 of the peer's PEM certificate (mTLS), or None."""
    pem = auth_context.get("x509_pem_cert")
    if not pem:
        return None
    return hashlib.sha256(pem[0]).hexdigest()


class LiveNodes:
    """The identities holding a live ADS stream, each with the clusters it may report."""

    def __init__(
        self,
        elsewhere: Callable[[str, str], bool] | None = None,
        all_clusters: Callable[[], Collection[str]] = frozenset,
        recheck_seconds: float = RECHECK_SECONDS,
    ) -> None:
        self.recheck_seconds = recheck_seconds
        self._streams: dict[NodeIdentity, dict[int, Callable[[], Collection[str]]]] = {}
        self._waiters: dict[NodeIdentity, set[asyncio.Future[None]]] = {}
        self._elsewhere = elsewhere
        self._all_clusters = all_clusters

    def open(
        self, identity: NodeIdentity, stream_id: int, clusters: Callable[[], Collection[str]]
    ) -> None:
        """ADS stream `stream_id` of `identity` started; `clusters` reads its snapshot's."""
        self._streams.setdefault(identity, {})[stream_id] = clusters
        for waiter in self._waiters.pop(identity, set()):
            if not waiter.done():
                waiter.set_result(None)

    def close(self, identity: NodeIdentity, stream_id: int) -> None:
        """The stream ended; with the identity's last, its reports lose their authority."""
        streams = self._streams.get(identity)
        if streams is None:
            return
        streams.pop(stream_id, None)
        if not streams:
            del self._streams[identity]

    def clusters(self, identity: NodeIdentity) -> frozenset[str] | None:
        """The clusters `identity` may report here; None if it holds no ADS stream here."""
        streams = self._streams.get(identity)
        if not streams:
            return None
        return frozenset().union(*(read() for read in streams.values()))

    async def authority(
        self, identity: NodeIdentity, checked: dict[str, float]
    ) -> frozenset[str] | None:
        """The clusters `identity` may report, here or through another replica; None if
        it holds no ADS stream anywhere. `checked` is the calling stream's memory of
        when another replica last vouched for it."""
        local = self.clusters(identity)
        if local is not None or self._elsewhere is None:
            return local
        last = checked.get("elsewhere")
        if last is None or time.monotonic() - last > self.recheck_seconds:
            if not await self._ask_elsewhere(identity):
                checked.pop("elsewhere", None)
                return None
            checked["elsewhere"] = time.monotonic()
        return frozenset(self._all_clusters())

    async def wait_authority(self, identity: NodeIdentity, timeout: float) -> bool:
        """Whether `identity` holds (or within `timeout` opens) an ADS stream, here or,
        with `elsewhere`, on another replica."""
        deadline = time.monotonic() + timeout
        while True:
            if identity in self._streams:
                return True
            if self._elsewhere is not None and await self._ask_elsewhere(identity):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._elsewhere is not None:
                left = min(left, _POLL_ELSEWHERE_SECONDS)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(identity, set()).add(waiter)
            try:
                await asyncio.wait_for(waiter, left)
            except TimeoutError:
                pass
            finally:
                waiters = self._waiters.get(identity)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[identity]

    async def _ask_elsewhere(self, identity: NodeIdentity) -> bool:
        assert self._elsewhere is not None
        try:
            return await asyncio.to_thread(self._elsewhere, identity.node_id, identity.node_cluster)
        except Exception:  # the database is briefly unavailable: no authority
            return False
