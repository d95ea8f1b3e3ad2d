"""`turnout serve`: the admin API and the ADS server in one process, one event loop.

One change feed (`turnout.storage.feed`), chosen here at start-up, wakes everything
that follows commits: the snapshot cache, key expiry and the dashboard. A commit
through the admin API reaches every stream in the same process within
milliseconds, carrying its changes; commits of other processes arrive through
PostgreSQL LISTEN/NOTIFY, or on SQLite through the feed's safety poll.
"""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn

from turnout.admin.app import create_app
from turnout.controller import PlanController
from turnout.envoy_bootstrap import split_host_port
from turnout.models.change import ChangeFeed, Commit
from turnout.models.token import generate_token, hash_token
from turnout.ratelimit.batch import BatchedCounters
from turnout.ratelimit.counters import DEFAULT_PREFIX, RedisCounters
from turnout.ratelimit.server import RateLimitServer
from turnout.ratelimit.service import FailureMode, RateLimitService, add_rate_limit_service
from turnout.ratelimit.usage import QuotaReader
from turnout.serve_production import Production, ProductionOptions, is_postgres
from turnout.storage.feed import PollingFeed
from turnout.storage.keycrypt import SECRET_KEY_ENV
from turnout.storage.keystore import KEY_ENTITY
from turnout.storage.pg_feed import PgChangeFeed
from turnout.storage.store import Store
from turnout.xds.cache import SnapshotCache
from turnout.xds.lrs import LoadStats
from turnout.xds.proxy_registry import ProxyRegistry
from turnout.xds.server import start_server

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
    """TLS, replicas, static exports (turnout/serve_production.py)."""
    secret_key: str | None = None
    """From TURNOUT_SECRET_KEY: encrypts API keys at rest. Required once keys exist."""
    redis_url: str | None = None
    """From TURNOUT_REDIS_URL: quota counters. Unset: quotas follow the failure mode."""
    redis_prefix: str = DEFAULT_PREFIX
    """Prefix of every counter key in Redis (TURNOUT_REDIS_PREFIX)."""
    ratelimit_failure_mode: FailureMode = FailureMode.OPEN
    """What quotas do when Redis is unreachable (TURNOUT_RATELIMIT_FAILURE_MODE)."""
    ratelimit_listen: str | None = None
    """Also answer rate limit calls here, on the server `turnout ratelimit` uses
    (grpcio's sync server with raw-bytes handlers, turnout/ratelimit/server.py: more
    calls per CPU-second than the xDS port's grpc.aio); over TLS with the xDS
    certificate and client CA when xDS has them."""


class ConfigError(Exception):
    """The process cannot start as configured; the message says what to set."""


def check_secret_key(store: Store, secret_key: str | None) -> None:
    """Refuse to start with API keys in the database and no secret to read them.

    Starting anyway would publish routes whose keys are all missing: every
    authenticated request would get 401 until someone noticed.
    """
    if secret_key:
        return
    count = store.keys.count()
    if count:
        raise ConfigError(
            f"the database holds {count} API key(s) but {SECRET_KEY_ENV} is not set; "
            "start Turnout with the secret the keys were stored with"
        )


def may_change_keys(commit: Commit) -> bool:
    """Whether `commit` may have added, changed or deleted API keys (a bare revision
    may have): only then does key expiry read the next expiry again, not after
    every route write, when its read would compete with the push (issue 17)."""
    if commit.changes is None:
        return True
    return any(c.kind in (KEY_ENTITY.kind, "consumer") for c in commit.changes)


EXPIRY_POLL_SECONDS = 30.0
"""Upper bound between expiry checks, so a key created elsewhere still expires on time."""


async def expire_keys(store: Store, wake: asyncio.Event) -> None:
    """Delete each key when it expires, as a store write that reaches every Envoy.

    Sleeps until the next expiry (or EXPIRY_POLL_SECONDS, or a commit), so a key
    stops working within about a second of `expires_at`.
    """
    while True:
        try:
            nxt = await asyncio.to_thread(store.keys.next_expiry)
            if nxt is not None and nxt <= datetime.now(UTC):
                # Only now a write: most commits must not pay for a write lock here.
                await asyncio.to_thread(store.keys.expire, datetime.now(UTC))
                nxt = await asyncio.to_thread(store.keys.next_expiry)
        except Exception:
            log.exception("expiring API keys failed; retrying")
            nxt = None
        delay = EXPIRY_POLL_SECONDS
        if nxt is not None:
            delay = min(delay, max(0.0, (nxt - datetime.now(UTC)).total_seconds()) + 0.05)
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), delay)


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


def change_feed(store: Store) -> ChangeFeed:
    """The feed every part of the process follows: with PostgreSQL, LISTEN/NOTIFY from
    the other replicas; with SQLite, a poll for other writers (CLI apply/import)."""
    if is_postgres(store.database_url):
        return PgChangeFeed(store)
    return PollingFeed(store)


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: `serve()` owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(opts: ServeOptions) -> None:
    try:
        rl_address = split_host_port(opts.ratelimit_listen) if opts.ratelimit_listen else None
    except ValueError as exc:
        raise ConfigError(f"--ratelimit-listen: {exc}") from None
    try:
        store = Store(opts.database_url, secret_key=opts.secret_key)
    except ValueError as exc:  # a secret too short to be one
        raise ConfigError(str(exc)) from None
    store.upgrade()
    check_secret_key(store, opts.secret_key)
    ensure_admin_token(store, opts.admin_token)

    cache = SnapshotCache()
    registry = ProxyRegistry()
    extras = Production(store, registry, opts.production)
    try:  # with xDS TLS, the rate limit port is TLS too (same certificate)
        rl_tls = extras.ratelimit_tls() if rl_address is not None else None
    except ValueError as exc:
        raise ConfigError(f"--ratelimit-listen: {exc}") from None
    reports = LoadStats()  # what this replica's proxies report over LRS
    load_stats = extras.load_stats(reports)  # ...and, with replicas, the others' too
    # The dashboard reads the counters this process's rate limit service keeps.
    quota_usage = QuotaReader(opts.redis_url, opts.redis_prefix) if opts.redis_url else None
    feed = change_feed(store)
    app = create_app(
        store,
        extras.proxy_status,
        admin_token=opts.admin_token,
        load_stats=load_stats,
        quota_usage=quota_usage,
        feed=feed,
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

    counters = RedisCounters(opts.redis_url, opts.redis_prefix) if opts.redis_url else None
    ratelimit = RateLimitService(counters, opts.ratelimit_failure_mode)
    grpc_server, _port = await start_server(
        cache,
        registry,
        opts.xds_listen,
        reports,
        also=[lambda server: add_rate_limit_service(server, ratelimit)],
        connected_elsewhere=extras.connected_elsewhere if extras.replicated else None,
        **extras.xds_security(),
    )
    fast_ratelimit: RateLimitServer | None = None
    fast_counters: BatchedCounters | None = None
    if opts.ratelimit_listen is not None:
        # Its own counters: the sync server's threads batch through their own pipeline.
        if opts.redis_url:
            fast_counters = BatchedCounters(opts.redis_url, opts.redis_prefix)
        fast_ratelimit = RateLimitServer(
            RateLimitService(fast_counters, opts.ratelimit_failure_mode)
        )
        try:
            await asyncio.to_thread(fast_ratelimit.start, opts.ratelimit_listen, rl_tls)
        except OSError as exc:
            await grpc_server.stop(0)
            if fast_counters is not None:
                fast_counters.close()
            raise ConfigError(f"cannot listen on --ratelimit-listen: {exc}") from exc
    key_commits = asyncio.Event()

    def heard(commit: Commit) -> None:
        if may_change_keys(commit):
            loop.call_soon_threadsafe(key_commits.set)

    unsubscribe = feed.subscribe(heard)
    feed.start()
    tasks = [
        asyncio.create_task(
            PlanController(store, load_stats, is_leader=lambda: extras.leader.is_leader).run(),
            name="plan-controller",
        ),
        asyncio.create_task(cache.run(store, feed), name="snapshot-cache"),
        asyncio.create_task(admin.serve(), name="admin-api"),
        *extras.tasks(),
        asyncio.create_task(expire_keys(store, key_commits), name="key-expiry"),
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
        if fast_ratelimit is not None:
            await asyncio.to_thread(fast_ratelimit.stop, GRACE_SECONDS)
        if fast_counters is not None:
            await asyncio.to_thread(fast_counters.close)
        stopper.cancel()
        for task in tasks:
            if task.get_name() != "admin-api":
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        extras.stop()
        feed.stop()
        unsubscribe()
        if counters is not None:
            await counters.close()
        if quota_usage is not None:
            quota_usage.close()
        store.close()
