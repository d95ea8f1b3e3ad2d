"""What `turnout serve` adds for production: TLS, replicas, static exports.

Kept out of `turnout/serve.py` so the core wiring stays readable; `serve()` asks
a `Production` for uvicorn TLS settings, xDS credentials, the proxy status
source for the admin API, and background tasks, and stops it at shutdown.

- Admin TLS: `--admin-tls-cert/--admin-tls-key` (uvicorn serves HTTPS).
- xDS mTLS: `--xds-tls-cert/--xds-tls-key/--xds-client-ca`, plus
  `--xds-allow-list` (turnout/xds/identity.py). The same certificate and client
  CA secure `--ratelimit-listen`: Envoy calls the rate limit service with the
  client certificate and trust it uses for xDS.
- Replicas on PostgreSQL: the LISTEN/NOTIFY change feed
  (turnout/storage/pg_feed.py) and proxy status shared through the database
  (turnout/storage/replicas.py).
- `--export-static-dir/--export-static-interval`: a static Envoy configuration
  per node cluster, rewritten whenever the revision changed.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import make_url

from turnout.envoy_bootstrap import split_host_port
from turnout.export_static import render, write_atomically
from turnout.models.errors import StoreUnavailable
from turnout.models.load_stats import LoadStatsSource
from turnout.models.proxy_status import ProxyStatusSource
from turnout.storage.leader import Leader
from turnout.storage.replicas import SharedLoadStats, SharedProxyStatus
from turnout.storage.store import Store
from turnout.xds.lrs import LoadStats
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.translate import NodeGroup

log = logging.getLogger("turnout")

SINGLETON_WORK = "turnout-singleton-work"
"""The advisory-lock name of the replica that runs once-only work."""
PUBLISH_INTERVAL_S = 1.0
"""How often this replica's proxy list is compared and written if it changed."""
PUBLISH_REFRESH_S = 5.0
"""How often it is written regardless, so other replicas see it as alive."""


def default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ProductionOptions:
    admin_tls_cert: Path | None = None
    admin_tls_key: Path | None = None
    xds_tls_cert: Path | None = None
    xds_tls_key: Path | None = None
    xds_client_ca: Path | None = None
    """Require proxies to present a certificate signed by this CA."""
    xds_allow_list: Path | None = None
    """YAML rules tying certificate names to node ids / node clusters."""
    replica_id: str = field(default_factory=default_replica_id)
    export_static_dir: Path | None = None
    export_static_interval: float = 30.0
    export_static_node_clusters: tuple[str, ...] = ("default",)
    export_static_listener: str = "0.0.0.0:10000"

    def validate(self) -> None:
        if (self.admin_tls_cert is None) != (self.admin_tls_key is None):
            raise ValueError("--admin-tls-cert and --admin-tls-key go together")
        if (self.xds_tls_cert is None) != (self.xds_tls_key is None):
            raise ValueError("--xds-tls-cert and --xds-tls-key go together")
        if self.xds_client_ca is not None and self.xds_tls_cert is None:
            raise ValueError("--xds-client-ca needs --xds-tls-cert and --xds-tls-key")
        if self.xds_allow_list is not None and self.xds_client_ca is None:
            raise ValueError("--xds-allow-list needs --xds-client-ca (client certificates)")
        for path in (
            self.admin_tls_cert,
            self.admin_tls_key,
            self.xds_tls_cert,
            self.xds_tls_key,
            self.xds_client_ca,
            self.xds_allow_list,
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"no such file: {path}")


def options_from_params(params: Mapping[str, Any]) -> ProductionOptions:
    """The production options of `turnout serve`'s parsed command line (click's params)."""
    opts = ProductionOptions(
        admin_tls_cert=params["admin_tls_cert"],
        admin_tls_key=params["admin_tls_key"],
        xds_tls_cert=params["xds_tls_cert"],
        xds_tls_key=params["xds_tls_key"],
        xds_client_ca=params["xds_client_ca"],
        xds_allow_list=params["xds_allow_list"],
        replica_id=params["replica_id"] or default_replica_id(),
        export_static_dir=params["export_static_dir"],
        export_static_interval=params["export_static_interval"],
        export_static_node_clusters=tuple(params["export_static_node_clusters"] or ("default",)),
        export_static_listener=params["export_static_listener"],
    )
    opts.validate()
    split_host_port(opts.export_static_listener)  # ValueError names a bad address
    return opts


def is_postgres(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


class Production:
    """The production extras of one `turnout serve` process."""

    def __init__(self, store: Store, registry: ProxyRegistry, opts: ProductionOptions) -> None:
        self._store = store
        self._registry = registry
        self.opts = opts
        self._shared: SharedProxyStatus | None = None
        self._shared_load: SharedLoadStats | None = None
        if is_postgres(store.database_url):
            self._shared = SharedProxyStatus(store, opts.replica_id, registry)
        self.leader = Leader(store.database_url, SINGLETON_WORK)
        """Who runs once-only work (plan controller, scheduled freezes): check
        `leader.is_leader` before each step. Always true on SQLite."""

    @property
    def proxy_status(self) -> ProxyStatusSource:
        return self._shared if self._shared is not None else self._registry

    def load_stats(self, local: LoadStats) -> LoadStatsSource:
        """The load figures the controller and the admin API judge on: with several
        replicas, every replica's reports (`local` is this one's, from LRS)."""
        if self._shared is None:
            return local
        local.keep_unpublished()
        self._shared_load = SharedLoadStats(self._store, self.opts.replica_id, local)
        return self._shared_load

    @property
    def replicated(self) -> bool:
        """Replicas share proxy status through the database (PostgreSQL)."""
        return self._shared is not None

    def connected_elsewhere(self, node_id: str, node_cluster: str) -> bool:
        """Whether any replica holds an ADS stream for the node (reads the database).
        Lets a proxy report load to another replica than the one holding its ADS
        stream."""
        if self._shared is None:
            return False
        return any(
            p.node_id == node_id and p.node_cluster == node_cluster for p in self._shared.proxies()
        )

    def uvicorn_kwargs(self) -> dict[str, Any]:
        if self.opts.admin_tls_cert is None:
            return {}
        return {
            "ssl_certfile": str(self.opts.admin_tls_cert),
            "ssl_keyfile": str(self.opts.admin_tls_key),
        }

    def xds_security(self) -> dict[str, Any]:
        """Keyword arguments for `turnout.xds.server.start_server`."""
        if self.opts.xds_tls_cert is None or self.opts.xds_tls_key is None:
            return {}
        from turnout.xds import handshake_log
        from turnout.xds.identity import AllowList
        from turnout.xds.server import tls_credentials

        handshake_log.install()
        out: dict[str, Any] = {
            "credentials": tls_credentials(
                self.opts.xds_tls_cert, self.opts.xds_tls_key, self.opts.xds_client_ca
            )
        }
        if self.opts.xds_allow_list is not None:
            from turnout.xds.identity import cert_names

            allow = AllowList.load(self.opts.xds_allow_list)

            def authorize(auth_context: Any, node_id: str, node_cluster: str) -> None:
                allow.check(cert_names(auth_context), node_id, node_cluster)

            out["authorize"] = authorize
        return out

    def ratelimit_tls(self) -> grpc.ServerCredentials | None:
        """The credentials for `--ratelimit-listen`: xDS's certificate and client CA
        (no allow-list: a rate limit call claims no node). ValueError if unusable."""
        if self.opts.xds_tls_cert is None or self.opts.xds_tls_key is None:
            return None
        from turnout.ratelimit.server import server_credentials

        return server_credentials(
            self.opts.xds_tls_cert, self.opts.xds_tls_key, self.opts.xds_client_ca
        )

    def tasks(self) -> list[asyncio.Task[None]]:
        self.leader.start()
        tasks = []
        if self._shared is not None:
            tasks.append(asyncio.create_task(self._publish_loop(), name="proxy-status"))
        if self.opts.export_static_dir is not None:
            tasks.append(asyncio.create_task(self._export_loop(), name="export-static"))
        return tasks

    def stop(self) -> None:
        self.leader.stop()
        if self._shared is not None:
            with contextlib.suppress(StoreUnavailable):
                self._shared.withdraw()

    async def _publish_loop(self) -> None:
        assert self._shared is not None
        loop = asyncio.get_running_loop()
        since_forced = PUBLISH_REFRESH_S
        while True:
            force = since_forced >= PUBLISH_REFRESH_S
            try:
                await asyncio.to_thread(self._shared.publish, force)
                if force:
                    since_forced = 0.0
            except StoreUnavailable as exc:
                log.debug("proxy status not published: %s", exc)
            if self._shared_load is not None:
                try:
                    await asyncio.to_thread(self._shared_load.publish)
                except StoreUnavailable as exc:
                    log.debug("load reports not published: %s", exc)
            start = loop.time()
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            since_forced += loop.time() - start

    async def _export_loop(self) -> None:
        assert self.opts.export_static_dir is not None
        host, port = split_host_port(self.opts.export_static_listener)
        exported: int | None = None
        while True:
            try:
                revision = await asyncio.to_thread(self._store.revision)
                if revision != exported:
                    decl = await asyncio.to_thread(self._store.load)
                    for group in self.opts.export_static_node_clusters:
                        text = render(decl, NodeGroup(host, port, group))
                        path = self.opts.export_static_dir / f"{group}.yaml"
                        await asyncio.to_thread(write_atomically, path, text)
                    exported = decl.revision
                    log.info("exported static config at revision %d", decl.revision)
            except StoreUnavailable as exc:
                log.warning("static export skipped: %s", exc)
            except Exception:
                log.exception("static export failed")
            await asyncio.sleep(self.opts.export_static_interval)
