"""The server-side commands of `turnout`, which work on the database (or run a server).

`serve`, `ratelimit`, `bootstrap`, `db upgrade`, `demo`, `import kong`, `backup`,
`restore`, `verify`, `certs init`, `export-static`: native click commands, so their
`--help` is click's and shell completion reaches their options. Defaults that come
from the environment are read through `turnout/settings.py` when the command line
is parsed. Each command returns its exit code (see `turnout --help`).
"""

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from turnout import settings
from turnout.settings import current as current_settings
from turnout.settings import database_url as resolve_database_url

DB_HELP = "database URL (default: $TURNOUT_DATABASE_URL or sqlite:///turnout.db)"

FilePath = click.Path(path_type=Path)
"""A file given on the command line; its existence is checked (and named) by the command."""


def _examples(*lines: str) -> str:
    return "\b\nexamples:\n" + "\n".join(f"  {line}" for line in lines)


def _database_url_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--database-url", metavar="URL", help=DB_HELP)(f)


def _failure_mode_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ratelimit-failure-mode",
        type=click.Choice(["open", "closed"]),
        default=lambda: current_settings().ratelimit_failure_mode,
        help="when Redis is unreachable, let quota-limited requests through (open) or "
        "refuse them with 429 (closed); default: $TURNOUT_RATELIMIT_FAILURE_MODE or "
        f"{settings.DEFAULT_FAILURE_MODE}",
    )(f)


def _fail(command: str, exc: Exception) -> int:
    click.echo(f"turnout {command}: {exc}", err=True)
    return 2


# serve ------------------------------------------------------------------------------


@click.command(
    "serve",
    epilog=_examples(
        "turnout serve --database-url sqlite:///turnout.db",
        "TURNOUT_ADMIN_TOKEN=... turnout serve --admin-listen 0.0.0.0:8001 "
        "--database-url postgresql+psycopg://turnout@db:5432/turnout",
    ),
)
@_database_url_option
@click.option(
    "--admin-listen",
    default=settings.DEFAULT_ADMIN_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="the admin API's address",
)
@click.option(
    "--xds-listen",
    default=settings.DEFAULT_XDS_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="the ADS (xDS) server's address, which Envoys connect to",
)
@click.option(
    "--ratelimit-listen",
    metavar="HOST:PORT",
    help="also answer rate limit calls on this port, on the server of `turnout "
    "ratelimit` (Envoys: `turnout bootstrap --ratelimit-address`), over TLS with the "
    "--xds-tls-* certificate and client CA when given; the xDS port always answers them too",
)
@click.option("--admin-tls-cert", type=FilePath, help="serve the admin API over HTTPS")
@click.option("--admin-tls-key", type=FilePath, help="its private key (PEM)")
@click.option("--xds-tls-cert", type=FilePath, help="serve xDS over TLS")
@click.option("--xds-tls-key", type=FilePath, help="its private key (PEM)")
@click.option("--xds-client-ca", type=FilePath, help="require proxy certificates signed by this CA")
@click.option(
    "--xds-allow-list", type=FilePath, help="YAML rules: certificate names -> node ids/clusters"
)
@click.option(
    "--replica-id",
    default=lambda: current_settings().replica_id,
    help="this replica's name in shared proxy status (default: $TURNOUT_REPLICA_ID, or host-pid)",
)
@click.option("--export-static-dir", type=FilePath, help="keep static Envoy configs here")
@click.option(
    "--export-static-interval", type=float, default=30.0, show_default=True, metavar="SECONDS"
)
@click.option(
    "--export-static-node-cluster",
    "export_static_node_clusters",
    multiple=True,
    metavar="NAME",
    help="node cluster to export (repeatable; default: default)",
)
@click.option(
    "--export-static-listener", default="0.0.0.0:10000", show_default=True, metavar="HOST:PORT"
)
@_failure_mode_option
def serve_cmd(**params: Any) -> int:
    """Run the admin API and the ADS server (database)."""
    from turnout.ratelimit.service import FailureMode
    from turnout.serve import ConfigError, ServeOptions, serve
    from turnout.serve_production import options_from_params

    try:
        production = options_from_params(params)
    except ValueError as exc:
        return _fail("serve", exc)
    env = current_settings()
    opts = ServeOptions(
        database_url=resolve_database_url(params["database_url"]),
        admin_listen=params["admin_listen"],
        xds_listen=params["xds_listen"],
        admin_token=env.admin_token,
        production=production,
        secret_key=env.secret_key,
        redis_url=env.redis_url,
        redis_prefix=env.redis_prefix,
        ratelimit_failure_mode=FailureMode(params["ratelimit_failure_mode"]),
        ratelimit_listen=params["ratelimit_listen"],
    )
    try:
        asyncio.run(serve(opts))
    except ConfigError as exc:
        return _fail("serve", exc)
    return 0


# ratelimit --------------------------------------------------------------------------


@click.command(
    "ratelimit",
    epilog=_examples("TURNOUT_REDIS_URL=redis://127.0.0.1:6379/0 turnout ratelimit --workers 2"),
)
@click.option(
    "--listen", default=settings.DEFAULT_RATELIMIT_LISTEN, show_default=True, metavar="HOST:PORT"
)
@click.option(
    "--tls-cert",
    type=FilePath,
    metavar="FILE",
    help="answer over TLS with this certificate (PEM; e.g. the server.pem of `turnout "
    "certs init`, which Envoys bootstrapped with --xds-ca trust)",
)
@click.option("--tls-key", type=FilePath, metavar="FILE", help="its private key (PEM)")
@click.option(
    "--client-ca",
    type=FilePath,
    metavar="FILE",
    help="require client certificates signed by this CA (the proxies' mTLS certificates)",
)
@click.option(
    "--client-allow-list",
    type=FilePath,
    metavar="FILE",
    help="YAML list of rules `- names: [glob, ...]`: only certificates with a matching "
    "CN/SAN may call (the --xds-allow-list format, names only)",
)
@click.option(
    # A string, checked below: the message names the variable's value as well as the flag's.
    "--workers",
    default=lambda: current_settings().ratelimit_workers,
    metavar="N",
    help="run N processes on the one port (SO_REUSEPORT), e.g. one per core "
    "(default 1; $TURNOUT_RATELIMIT_WORKERS)",
)
@click.option(
    "--no-pin",
    is_flag=True,
    help="leave the process (each worker) free to run on any CPU; by default each is "
    "pinned to one CPU, which measured twice as many decisions per second or more",
)
# A worker of --workers shares the port with its siblings, on the CPU it is given.
@click.option("--reuse-port", is_flag=True, hidden=True)
@click.option("--cpu", type=int, hidden=True)
@_failure_mode_option
@click.pass_context
def ratelimit_cmd(
    ctx: click.Context,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
    client_allow_list: Path | None,
    workers: str,
    no_pin: bool,
    reuse_port: bool,
    cpu: int | None,
    ratelimit_failure_mode: str,
) -> int:
    """Run only the rate limit service (quotas; Redis: $TURNOUT_REDIS_URL)."""
    from turnout.ratelimit.main import min_cpu, run_ratelimit, security
    from turnout.ratelimit.service import FailureMode

    env = current_settings()
    mode = FailureMode(ratelimit_failure_mode)
    try:
        secure = security(tls_cert, tls_key, client_ca, client_allow_list)
        count = int(workers) if str(workers).isdigit() else 0
        if count < 1:
            raise ValueError(f"--workers: expected 1 or more, got {workers!r}")
        if count > 1:
            from turnout.ratelimit.workers import run_workers

            worker_args = ["ratelimit", *_worker_options(ctx.params)]
            return run_workers(count, listen, [*_root_argv(ctx), *worker_args])
        pin = None if no_pin else (cpu if cpu is not None else min_cpu())
        run_ratelimit(
            listen, env.redis_url, mode, env.redis_prefix, secure, reuse_port=reuse_port, cpu=pin
        )
    except (OSError, ValueError) as exc:
        return _fail("ratelimit", exc)
    return 0


def _worker_options(params: dict[str, Any]) -> list[str]:
    """The options of one worker of `ratelimit --workers N`: the parent's, without
    --workers (run_workers adds `--workers 1` and the worker-only options)."""
    out = ["--listen", params["listen"], "--ratelimit-failure-mode"]
    out.append(params["ratelimit_failure_mode"])
    for name in ("tls_cert", "tls_key", "client_ca", "client_allow_list"):
        if params[name] is not None:
            out += ["--" + name.replace("_", "-"), str(params[name])]
    return [*out, "--no-pin"] if params["no_pin"] else out


def _root_argv(ctx: click.Context) -> list[str]:
    """The root options of this invocation, for a child `turnout` process."""
    root = ctx.find_root()
    obj = root.obj or {}
    params = root.params
    level = obj.get("log_level") or params.get("log_level") or current_settings().log_level
    fmt = obj.get("log_format") or params.get("log_format") or current_settings().log_format
    argv = ["--log-level", str(level), "--log-format", str(fmt)]
    return [*argv, "-v"] if params.get("verbose") else argv


# bootstrap --------------------------------------------------------------------------


@click.command(
    "bootstrap",
    epilog=_examples("turnout bootstrap --node-id edge-1 --listener-port 10000 > edge-1.yaml"),
)
@click.option("--node-id", required=True, help="the proxy's node id")
@click.option("--node-cluster", default="default", show_default=True, help="its node cluster")
@click.option(
    "--xds-address",
    multiple=True,
    metavar="HOST:PORT",
    help="a Turnout replica (repeatable; default 127.0.0.1:18000)",
)
@click.option("--listener-port", type=int, default=10000, show_default=True)
@click.option("--listener-address", default="0.0.0.0", show_default=True)
@click.option("--admin-port", type=int, default=9901, show_default=True)
@click.option("--delta", is_flag=True, help="use Delta xDS (DELTA_GRPC)")
@click.option(
    "--ratelimit-address",
    multiple=True,
    metavar="HOST:PORT",
    help="the rate limit service (default: the xDS address, served by `turnout serve`); "
    "repeat for several `turnout ratelimit` hosts (calls go round robin over them)",
)
@click.option("-o", "--output", metavar="FILE", help="write to this file instead of stdout")
@click.option(
    "--admin-address",
    default="127.0.0.1",
    show_default=True,
    help="Envoy admin bind address (for scraping)",
)
@click.option("--xds-ca", help="CA that signed Turnout's xDS certificate (enables mTLS)")
@click.option("--client-cert", help="this proxy's client certificate (PEM)")
@click.option("--client-key", help="its private key (PEM)")
def bootstrap_cmd(
    node_id: str,
    node_cluster: str,
    xds_address: tuple[str, ...],
    listener_port: int,
    listener_address: str,
    admin_port: int,
    delta: bool,
    ratelimit_address: tuple[str, ...],
    output: str | None,
    admin_address: str,
    xds_ca: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> int:
    """Print an Envoy bootstrap pointing at Turnout."""
    from turnout.cli.ops import bootstrap_extras
    from turnout.envoy_bootstrap import BootstrapOptions, render_bootstrap

    try:
        opts = BootstrapOptions(
            node_id=node_id,
            node_cluster=node_cluster,
            xds_address=(xds_address or (settings.DEFAULT_XDS_LISTEN,))[0],
            listener_port=listener_port,
            listener_address=listener_address,
            admin_port=admin_port,
            delta=delta,
            ratelimit_address=(ratelimit_address or (None,))[0],
            more_ratelimit_addresses=tuple(ratelimit_address[1:]),
            **bootstrap_extras(xds_address, admin_address, xds_ca, client_cert, client_key),
        )
        text = render_bootstrap(opts)
    except ValueError as exc:
        return _fail("bootstrap", exc)
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


# db upgrade, demo -------------------------------------------------------------------


@click.group("db", epilog=_examples("turnout db upgrade --database-url sqlite:///turnout.db"))
def db_group() -> None:
    """Database maintenance: `turnout db upgrade`."""


@db_group.command(
    "upgrade", epilog=_examples("turnout db upgrade --database-url sqlite:///turnout.db")
)
@_database_url_option
def db_upgrade_cmd(database_url: str | None) -> int:
    """Apply all migrations."""
    from turnout.storage.store import Store

    store = Store(resolve_database_url(database_url))
    try:
        store.upgrade()
        click.echo(f"database at revision {store.revision()}")
    finally:
        store.close()
    return 0


@click.command("demo", epilog=_examples("turnout demo"))
@_database_url_option
def demo_cmd(database_url: str | None) -> int:
    """Run Turnout, a real Envoy and two demo upstreams (what `make run` does)."""
    from turnout.demo import run_demo

    return run_demo(resolve_database_url(database_url))


# import kong, backup, restore, verify -----------------------------------------------


def _with_store(database_url: str | None, run: Callable[..., int], *args: Any, **kw: Any) -> int:
    from turnout.storage.store import Store

    store = Store(resolve_database_url(database_url), secret_key=current_settings().secret_key)
    try:
        store.upgrade()
        return run(store, *args, **kw)
    finally:
        store.close()


@click.group("import", epilog=_examples("turnout import kong kong.yaml --dry-run"))
def import_group() -> None:
    """Import another gateway's configuration: `turnout import kong FILE` (database)."""


@import_group.command(
    "kong",
    epilog=_examples("turnout import kong kong.yaml --dry-run", "turnout import kong kong.yaml"),
)
@click.argument("file", metavar="FILE")
@_database_url_option
@click.option("--dry-run", is_flag=True, help="report, change nothing")
def import_kong_cmd(file: str, database_url: str | None, dry_run: bool) -> int:
    """Import a decK/Kong declarative file (3.0)."""
    from turnout import config_file

    return _with_store(database_url, config_file.import_kong, file, sys.stdout, dry_run=dry_run)


_OLD_SECRET_KEY_HELP = (
    "the backup's API keys are under the secret in $TURNOUT_OLD_SECRET_KEY "
    "(restore re-encrypts them under $TURNOUT_SECRET_KEY)"
)


@click.command("backup", epilog=_examples("turnout backup turnout.backup.json"))
@click.argument("file", metavar="FILE")
@_database_url_option
def backup_cmd(file: str, database_url: str | None) -> int:
    """Write a backup (declaration, keys, history, xDS digests) (database)."""
    from turnout import backup

    return _with_store(database_url, backup.backup, file, sys.stdout)


@click.command(
    "restore",
    epilog=_examples("turnout restore turnout.backup.json --database-url sqlite:///new.db"),
)
@click.argument("file", metavar="FILE")
@_database_url_option
@click.option("--force", is_flag=True, help="replace a database that is not empty")
@click.option("--old-secret-key", is_flag=True, help=_OLD_SECRET_KEY_HELP)
def restore_cmd(file: str, database_url: str | None, force: bool, old_secret_key: bool) -> int:
    """Restore a backup into an empty database (database)."""
    from turnout import backup

    return _with_store(
        database_url, backup.restore, file, sys.stdout, force=force, old_secret=old_secret_key
    )


@click.command(
    "verify",
    epilog=_examples("turnout verify turnout.backup.json --database-url sqlite:///new.db"),
)
@click.argument("file", metavar="FILE")
@_database_url_option
@click.option("--old-secret-key", is_flag=True, help=_OLD_SECRET_KEY_HELP)
def verify_cmd(file: str, database_url: str | None, old_secret_key: bool) -> int:
    """Prove the database serves the backup's exact xDS bytes (database)."""
    from turnout import backup

    return _with_store(database_url, backup.verify, file, sys.stdout, old_secret=old_secret_key)


# certs init, export-static ----------------------------------------------------------


@click.group("certs", epilog=_examples("turnout certs init --dir certs --node edge-1"))
def certs_group() -> None:
    """Certificates for mTLS between Turnout and Envoy."""


@certs_group.command(
    "init", epilog=_examples("turnout certs init --dir certs --node edge-1 --node edge-2")
)
@click.option(
    "--dir", "out_dir", default="certs", show_default=True, type=FilePath, help="output directory"
)
@click.option("--node", multiple=True, help="node id of a proxy (repeatable)")
@click.option(
    "--server-name",
    multiple=True,
    help="DNS name of Turnout's xDS endpoint (repeatable; default: localhost, turnout)",
)
@click.option(
    "--server-ip", multiple=True, help="IP of the xDS endpoint (repeatable; default: 127.0.0.1)"
)
def certs_init_cmd(
    out_dir: Path, node: tuple[str, ...], server_name: tuple[str, ...], server_ip: tuple[str, ...]
) -> int:
    """Create a CA, a server cert and proxy certs."""
    from turnout.certs import init

    written = init(
        out_dir,
        nodes=list(node),
        server_names=list(server_name) or ["localhost", "turnout"],
        server_ips=list(server_ip) or ["127.0.0.1"],
    )
    for path in written:
        click.echo(path)
    return 0


@click.command(
    "export-static",
    epilog=_examples("turnout export-static --node-cluster default -o envoy-static.yaml"),
)
@_database_url_option
@click.option("--node-cluster", required=True, metavar="NAME", help="the node cluster to render")
@click.option("--listener-port", type=int, default=10000, show_default=True)
@click.option("--listener-address", default="0.0.0.0", show_default=True)
@click.option("--admin-port", type=int, default=9901, show_default=True)
@click.option("-o", "--output", metavar="FILE", help="write to this file instead of stdout")
def export_static_cmd(
    database_url: str | None,
    node_cluster: str,
    listener_port: int,
    listener_address: str,
    admin_port: int,
    output: str | None,
) -> int:
    """Write a static Envoy config of now (database)."""
    from turnout.export_static import render, write_atomically
    from turnout.storage.store import Store
    from turnout.xds.translate import NodeGroup

    store = Store(resolve_database_url(database_url))
    try:
        decl = store.load()
    finally:
        store.close()
    opts = NodeGroup(listener_address, listener_port, node_cluster)
    text = render(decl, opts, admin_port=admin_port)
    if output:
        write_atomically(Path(output), text)
    else:
        sys.stdout.write(text)
    return 0


COMMANDS: tuple[click.Command, ...] = (
    serve_cmd,
    ratelimit_cmd,
    bootstrap_cmd,
    db_group,
    demo_cmd,
    import_group,
    backup_cmd,
    restore_cmd,
    verify_cmd,
    certs_group,
    export_static_cmd,
)
"""The server-side commands, in the order `turnout --help` lists them."""
