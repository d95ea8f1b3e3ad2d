"""Proxy status shared between Turnout replicas through the database.

Each replica only sees the proxies attached to itself. To let `GET /proxies` on
any replica show every proxy, each replica writes its own list into one row of
`replica_proxies` (keyed by replica id) whenever it changes and at least every
few seconds, and reads the union of the rows that are still fresh. A replica that
died stops refreshing its row and drops out after `stale_after`.
"""

import builtins
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.audit import UtcDateTime
from turnout.models.db import Base
from turnout.models.errors import StoreUnavailable
from turnout.models.proxy_status import ProxyStatus, ProxyStatusSource
from turnout.models.store import Store

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=15)
"""A replica row older than this belongs to a replica that is gone."""


class ReplicaProxiesRow(Base):
    __tablename__ = "replica_proxies"

    replica: Mapped[str] = mapped_column(String(128), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    proxies: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class SharedProxyStatus:
    """A `ProxyStatusSource` over every live replica, this one read first-hand.

    `local` is this replica's own registry; its proxies are always current, the
    other replicas' as of their last publish.
    """

    def __init__(
        self,
        store: Store,
        replica: str,
        local: ProxyStatusSource,
        stale_after: timedelta = STALE_AFTER,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self.replica = replica
        self._local = local
        self._stale_after = stale_after
        self._clock = clock
        self._last: builtins.list[dict[str, Any]] | None = None
        self._last_at: datetime | None = None

    def publish(self, force: bool = False) -> bool:
        """Write this replica's proxies if they changed (or `force`); True if written."""
        proxies = [p.model_dump(mode="json") for p in self._local.proxies()]
        now = self._clock()
        if not force and proxies == self._last:
            return False
        with self._store._write() as session:
            row = session.get(ReplicaProxiesRow, self.replica)
            if row is None:
                session.add(
                    ReplicaProxiesRow(replica=self.replica, updated_at=now, proxies=proxies)
                )
            else:
                row.updated_at = now
                row.proxies = proxies
        self._last, self._last_at = proxies, now
        return True

    def withdraw(self) -> None:
        """Remove this replica's row (on a clean shutdown)."""
        with self._store._write() as session:
            session.execute(
                delete(ReplicaProxiesRow).where(ReplicaProxiesRow.replica == self.replica)
            )

    def proxies(self) -> builtins.list[ProxyStatus]:
        out = {(p.node_id, p.connected_since): p for p in self._local.proxies()}
        try:
            others = self._others()
        except StoreUnavailable:
            log.warning("database unavailable: showing only this replica's proxies")
            others = []
        for proxy in others:
            out.setdefault((proxy.node_id, proxy.connected_since), proxy)
        return sorted(out.values(), key=lambda p: (p.node_id, p.connected_since))

    def proxy_config(self, node_id: str) -> dict[str, builtins.list[dict[str, Any]]] | None:
        """What this replica sent the proxy; a proxy held by another replica is
        answered there (its config is not shared through the database)."""
        return self._local.proxy_config(node_id)

    def _others(self) -> builtins.list[ProxyStatus]:
        fresh_since = self._clock() - self._stale_after
        with self._store._read() as session:
            rows = session.scalars(
                select(ReplicaProxiesRow).where(
                    ReplicaProxiesRow.replica != self.replica,
                    ReplicaProxiesRow.updated_at >= fresh_since,
                )
            )
            return [ProxyStatus.model_validate(p) for row in rows for p in row.proxies]
