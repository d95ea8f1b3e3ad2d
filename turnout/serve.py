"""`turnout serve`: the admin API and the ADS server in one process, one event loop.

The store's change feed wakes the snapshot cache directly (no polling): a commit
through the admin API reaches every stream in the same process within
milliseconds.
"""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from turnout.admin.app import create_app
from turnout.admin.auth import generate_token, hash_token
from turnout.controller import PlanController
from turnout.envoy_bootstrap import split_host_port
from turnout.models.errors import TurnoutError
from turnout.models.store import Store
from turnout.production import Production, ProductionOptions
from turnout.xds.cache import SnapshotCache
from turnout.xds.lrs import LoadStats
from turnout.xds.server import start_server
from turnout.xds.status import ProxyRegistry

log = logging.getLogger("turnout")

GRACE_SECONDS = 2.0


@dataclass(frozen=True)
class ServeOptions:
    database_url: str
    admin_listen: str = "127.0.0.1:8001"
    xds_listen: str = "127.0.0.1:18000"
    admin_token: str | None = None
    """From TURNOUT_ADMIN_TOKEN; when unset the hash stored in the database is used."""
    production: ProductionOptions = field(default_factory=ProductionOptions)
    """TLS, replicas, static exports (turnout/production.py)."""


def ensure_admin_token(store: Store, token: str | None) -> None:
    """Without TURNOUT_ADMIN_TOKEN, generate a token once and keep only its hash."""
    if token is not None or store.admin_token_hash() is not None:
        return
    generated = generate_token()
    store.set_admin_token_hash(hash_token(generated))
    print(
        "Generated an admin token; it is shown only this once and only its hash is stored:\n"
        f"  {generated}\n"
        "Use it as 'Authorization: Bearer <token>', or set TURNOUT_ADMIN_TOKEN.",
        file=sys.stderr,
        flush=True,
    )


async def _poll_other_writers(store: Store, every: float = 1.0) -> None:
    """Pick up revisions committed by other processes (CLI apply/import, see Store)."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(store.poll_revision)
        except TurnoutError as exc:
            log.warning("polling the revision failed: %s", exc)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: `serve()` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(opts: ServeOptions) -> None:
    store = Store(opts.database_url)
    store.upgrade()
    ensure_admin_token(store, opts.admin_token)

    cache = SnapshotCache()
    registry = ProxyRegistry()
    load_stats = LoadStats()
    extras = Production(store, registry, opts.production)
    app = create_app(
        store, extras.proxy_status, admin_token=opts.admin_token, load_stats=load_stats
    )
    host, port = split_host_port(opts.admin_listen)
    admin = _Uvicorn(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            log_config=None,  # keep Turnout's logging setup (e.g. --log-format json)
            **extras.uvicorn_kwargs(),
        )
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    grpc_server, _port = await start_server(
        cache, registry, opts.xds_listen, load_stats, **extras.xds_security()
    )
    tasks = [
        asyncio.create_task(
            PlanController(store, load_stats, is_leader=lambda: extras.leader.is_leader).run(),
            name="plan-controller",
        ),
        asyncio.create_task(_poll_other_writers(store), name="revision-poll"),
        asyncio.create_task(cache.run(store), name="snapshot-cache"),
        asyncio.create_task(admin.serve(), name="admin-api"),
        *extras.tasks(),
    ]
    log.info(
        "xDS (ADS) listening on %s, admin API on http://%s", opts.xds_listen, opts.admin_listen
    )
    print(
        f"turnout: admin API http://{opts.admin_listen}  xDS {opts.xds_listen}",
        file=sys.stderr,
        flush=True,
    )
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        log.info("shutting down")
        admin.should_exit = True
        await grpc_server.stop(GRACE_SECONDS)
        stopper.cancel()
        for task in tasks:
            if task.get_name() != "admin-api":
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        extras.stop()
        store.close()
