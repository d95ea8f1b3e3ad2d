"""Proxy status and load reports shared between Turnout replicas through the database.

Each replica only sees the proxies attached to itself. To let `GET /proxies` on
any replica show every proxy, each replica writes its own list into one row of
`replica_proxies` (keyed by replica id) whenever it changes and at least every
few seconds, and reads the union of the rows that are still fresh. A replica that
died stops refreshing its row and drops out after `stale_after`.

Load reports (LRS) likewise reach only the replica holding a proxy's LRS stream,
while the plan controller runs on the leader. Each replica appends the reports it
received to `load_reports` every publish interval (`SharedLoadStats.publish`);
the figures for a window are this replica's own plus the other replicas' rows, so
a plan is judged on every proxy's traffic whichever replica leads.
"""

import builtins
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, delete, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.errors import StoreUnavailable
from turnout.models.load_stats import Load, LocalLoadStats
from turnout.models.proxy_status import ProxyStatus, ProxyStatusSource
from turnout.models.schema import Base, UtcDateTime
from turnout.storage.store import Store

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=15)
"""A replica row older than this belongs to a replica that is gone."""
LOAD_RETENTION = timedelta(hours=1)
"""Shared load reports older than this are deleted (as `turnout.xds.lrs.RETENTION`)."""


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
        with self._store.write_transaction() as session:
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
        with self._store.write_transaction() as session:
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
        with self._store.read_transaction() as session:
            rows = session.scalars(
                select(ReplicaProxiesRow).where(
                    ReplicaProxiesRow.replica != self.replica,
                    ReplicaProxiesRow.updated_at >= fresh_since,
                )
            )
            return [ProxyStatus.model_validate(p) for row in rows for p in row.proxies]


class LoadReportRow(Base):
    __tablename__ = "load_reports"
    __table_args__ = (Index("ix_load_reports_cluster_at", "cluster", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    replica: Mapped[str] = mapped_column(String(128))
    cluster: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)


class SharedLoadStats:
    """A `LoadStatsSource` over the load reports every replica received.

    `local` is this replica's own `turnout.xds.lrs.LoadStats`, read first-hand;
    the other replicas' reports are seen as of their last publish (within one
    publish interval). When the database cannot be read, only this replica's own
    figures count, so a plan waits for enough requests rather than misjudging.
    """

    def __init__(
        self,
        store: Store,
        replica: str,
        local: LocalLoadStats,
        retention: timedelta = LOAD_RETENTION,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self.replica = replica
        self._local = local
        self._retention = retention
        self._clock = clock

    def publish(self) -> int:
        """Write the reports received since the last publish; returns how many.

        Reports are taken before the write: if it fails they are lost to the other
        replicas (this one still counts them), never written twice.
        """
        samples = self._local.take_unpublished()
        with self._store.write_transaction() as session:
            session.add_all(
                LoadReportRow(
                    replica=self.replica,
                    cluster=s.cluster,
                    at=s.at,
                    requests=s.requests,
                    errors=s.errors,
                )
                for s in samples
            )
            session.execute(
                delete(LoadReportRow).where(LoadReportRow.at < self._clock() - self._retention)
            )
        return len(samples)

    def window(self, cluster: str, since: datetime) -> Load:
        own = self._local.window(cluster, since)
        try:
            with self._store.read_transaction() as session:
                requests, errors = session.execute(
                    select(
                        func.coalesce(func.sum(LoadReportRow.requests), 0),
                        func.coalesce(func.sum(LoadReportRow.errors), 0),
                    ).where(
                        LoadReportRow.cluster == cluster,
                        LoadReportRow.at >= since,
                        LoadReportRow.replica != self.replica,
                    )
                ).one()
        except (StoreUnavailable, SQLAlchemyError) as exc:
            log.debug("shared load reports unavailable, judging on this replica's: %s", exc)
            return own
        return Load(requests=own.requests + int(requests), errors=own.errors + int(errors))

    def report_interval_seconds(self) -> float:
        return self._local.report_interval_seconds()
