"""The server-side commands of `turnout`, which work on the database (or run a server).

`serve`, `ratelimit`, `bootstrap`, `db upgrade`, `demo`, `import kong`, `backup`,
`restore`, `verify`, `certs init`, `export-static`: their options are parsed here with
argparse, unchanged, and `turnout/cli/app.py` (the click root) hands them their
arguments. `parser()` also knows `dump/diff/apply/token` in their database form, for
scripts and tests that parse a command line without running it.
"""

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from turnout.cli.ops import (
    add_bootstrap_arguments,
    add_commands,
    add_log_format_argument,
    add_serve_arguments,
    configure_logging,
)
from turnout.cli.settings import DEFAULT_DATABASE_URL as DEFAULT_DATABASE_URL
from turnout.cli.settings import current as current_settings
from turnout.cli.settings import database_url as database_url

EPILOG = """example:
  turnout serve --database-url sqlite:///turnout.db --admin-listen 127.0.0.1:8001

exit codes:
  0  success
  1  the operation failed (a conflict, a refused or unreadable backup, a demo that did not start)
  2  a usage or configuration error (bad option or value, invalid settings,
     a declarative file that does not parse); for `turnout diff`: there are changes
     (`diff` answers 0 no change, 2 changes, 1 an error, as decK's --non-zero-exit-code)
"""


def _serve(args: argparse.Namespace) -> int:
    from turnout.ratelimit.service import FailureMode
    from turnout.serve import ConfigError, ServeOptions, serve
    from turnout.serve_production import options_from_args

    try:
        production = options_from_args(args)
    except ValueError as exc:
        print(f"turnout serve: {exc}", file=sys.stderr)
        return 2
    env = current_settings()
    opts = ServeOptions(
        database_url=database_url(args.database_url),
        admin_listen=args.admin_listen,
        xds_listen=args.xds_listen,
        admin_token=env.admin_token,
        production=production,
        secret_key=env.secret_key,
        redis_url=env.redis_url,
        redis_prefix=env.redis_prefix,
        ratelimit_failure_mode=FailureMode(args.ratelimit_failure_mode),
        ratelimit_listen=args.ratelimit_listen,
    )
    try:
        asyncio.run(serve(opts))
    except ConfigError as exc:
        print(f"turnout serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _ratelimit(args: argparse.Namespace) -> int:
    from turnout.ratelimit.main import min_cpu, run_ratelimit, security
    from turnout.ratelimit.service import FailureMode

    env = current_settings()
    redis_url = env.redis_url
    prefix = env.redis_prefix
    mode = FailureMode(args.ratelimit_failure_mode)
    try:
        secure = security(args.tls_cert, args.tls_key, args.client_ca, args.client_allow_list)
        workers = int(args.workers) if str(args.workers).isdigit() else 0
        if workers < 1:
            raise ValueError(f"--workers: expected 1 or more, got {args.workers!r}")
        if workers > 1:
            from turnout.ratelimit.workers import run_workers

            return run_workers(workers, args.listen, _worker_args(args.worker_argv))
        cpu = None if args.no_pin else (args.cpu if args.cpu is not None else min_cpu())
        run_ratelimit(
            args.listen, redis_url, mode, prefix, secure, reuse_port=args.reuse_port, cpu=cpu
        )
    except (OSError, ValueError) as exc:
        print(f"turnout ratelimit: {exc}", file=sys.stderr)
        return 2
    return 0


def _worker_args(argv: list[str]) -> list[str]:
    """The command line of one worker: the parent's, without --workers."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def _failure_mode_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ratelimit-failure-mode",
        choices=["open", "closed"],
        default=current_settings().ratelimit_failure_mode,
        help="when Redis is unreachable, let quota-limited requests through (open, the "
        "default) or refuse them with 429 (closed); $TURNOUT_RATELIMIT_FAILURE_MODE",
    )


def _bootstrap(args: argparse.Namespace) -> int:
    from turnout.cli.ops import bootstrap_extras
    from turnout.envoy_bootstrap import BootstrapOptions, render_bootstrap

    try:
        opts = BootstrapOptions(
            node_id=args.node_id,
            node_cluster=args.node_cluster,
            xds_address=(args.xds_address or ["127.0.0.1:18000"])[0],
            listener_port=args.listener_port,
            listener_address=args.listener_address,
            admin_port=args.admin_port,
            delta=args.delta,
            ratelimit_address=(args.ratelimit_address or [None])[0],
            more_ratelimit_addresses=tuple((args.ratelimit_address or [])[1:]),
            **bootstrap_extras(args),
        )
        text = render_bootstrap(opts)
    except ValueError as exc:
        print(f"turnout bootstrap: {exc}", file=sys.stderr)
        return 2
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _db_upgrade(args: argparse.Namespace) -> int:
    from turnout.storage.store import Store

    store = Store(database_url(args.database_url))
    try:
        store.upgrade()
        print(f"database at revision {store.revision()}")
    finally:
        store.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from turnout.demo import run_demo

    return run_demo(database_url(args.database_url))


def _with_store(args: argparse.Namespace, run: Callable[..., int], *extra: Any, **kw: Any) -> int:
    from turnout.storage.store import Store

    store = Store(database_url(args.database_url), secret_key=current_settings().secret_key)
    try:
        store.upgrade()
        return run(store, *extra, **kw)
    finally:
        store.close()


def _dump(args: argparse.Namespace) -> int:
    from turnout import config_file

    return _with_store(args, config_file.dump, sys.stdout)


def _diff(args: argparse.Namespace) -> int:
    from turnout import config_file

    return _with_store(args, config_file.diff_file, args.file, sys.stdout)


def _apply(args: argparse.Namespace) -> int:
    from turnout import config_file

    return _with_store(
        args,
        config_file.apply_file,
        args.file,
        sys.stdout,
        dry_run=args.dry_run,
        select_tag=args.select_tag,
        delete_keys=args.delete_keys,
    )


def _import_kong(args: argparse.Namespace) -> int:
    from turnout import config_file

    return _with_store(args, config_file.import_kong, args.file, sys.stdout, dry_run=args.dry_run)


def _backup(args: argparse.Namespace) -> int:
    from turnout import backup

    return _with_store(args, backup.backup, args.file, sys.stdout)


def _restore(args: argparse.Namespace) -> int:
    from turnout import backup

    return _with_store(
        args,
        backup.restore,
        args.file,
        sys.stdout,
        force=args.force,
        old_secret=args.old_secret_key,
    )


def _verify(args: argparse.Namespace) -> int:
    from turnout import backup

    return _with_store(args, backup.verify, args.file, sys.stdout, old_secret=args.old_secret_key)


def _add_declarative(sub: Any, db_help: str) -> None:
    """dump, diff, apply, backup, restore, verify: each on the database directly."""
    commands = [
        ("dump", "print the whole declaration as YAML", _dump, None),
        ("diff", "show what applying a file would change", _diff, "-f"),
        ("apply", "make the declaration equal to a file (one transaction)", _apply, "-f"),
        ("backup", "write a backup (declaration, keys, history, xDS digests)", _backup, ""),
        ("restore", "restore a backup into an empty database", _restore, ""),
        ("verify", "prove the database serves the backup's exact xDS bytes", _verify, ""),
    ]
    for name, help_text, func, file_arg in commands:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--database-url", help=db_help)
        if file_arg == "-f":
            cmd.add_argument("-f", "--file", required=True, help="YAML file, or - for stdin")
        elif file_arg == "":
            cmd.add_argument("file", metavar="FILE")
        cmd.set_defaults(func=func)
        if name == "apply":
            cmd.add_argument("--dry-run", action="store_true", help="check, change nothing")
            cmd.add_argument("--select-tag", metavar="T", help="manage only entities tagged T")
        if name == "apply":
            cmd.add_argument(
                "--delete-keys",
                action="store_true",
                help="allow deleting consumers that have API keys (their keys go too)",
            )
        if name == "restore":
            cmd.add_argument(
                "--force", action="store_true", help="replace a database that is not empty"
            )
        if name in ("restore", "verify"):
            cmd.add_argument(
                "--old-secret-key",
                action="store_true",
                help="the backup's API keys are under the secret in $TURNOUT_OLD_SECRET_KEY "
                "(restore re-encrypts them under $TURNOUT_SECRET_KEY)",
            )


def _version() -> str:
    try:
        return metadata.version("turnout")
    except metadata.PackageNotFoundError:
        return "unknown"


EXAMPLES: dict[str, list[str]] = {
    "serve": [
        "turnout serve --database-url sqlite:///turnout.db",
        "TURNOUT_ADMIN_TOKEN=... turnout serve --admin-listen 0.0.0.0:8001 "
        "--database-url postgresql+psycopg://turnout@db:5432/turnout",
    ],
    "ratelimit": ["TURNOUT_REDIS_URL=redis://127.0.0.1:6379/0 turnout ratelimit --workers 2"],
    "bootstrap": ["turnout bootstrap --node-id edge-1 --listener-port 10000 > edge-1.yaml"],
    "db": ["turnout db upgrade --database-url sqlite:///turnout.db"],
    "db upgrade": ["turnout db upgrade --database-url sqlite:///turnout.db"],
    "demo": ["turnout demo"],
    "import": ["turnout import kong kong.yaml --dry-run"],
    "import kong": ["turnout import kong kong.yaml --dry-run", "turnout import kong kong.yaml"],
    "dump": ["turnout dump --database-url sqlite:///turnout.db > turnout.yaml"],
    "diff": ["turnout diff -f turnout.yaml --database-url sqlite:///turnout.db"],
    "apply": ["turnout apply -f turnout.yaml --database-url sqlite:///turnout.db"],
    "backup": ["turnout backup turnout.backup.json"],
    "restore": ["turnout restore turnout.backup.json --database-url sqlite:///new.db"],
    "verify": ["turnout verify turnout.backup.json --database-url sqlite:///new.db"],
    "token": ["turnout token create --name ci --role operator --database-url sqlite:///t.db"],
    "token create": ["turnout token create --name ci --role operator --expires-in 30d"],
    "token list": ["turnout token list"],
    "token delete": ["turnout token delete --name ci"],
    "certs": ["turnout certs init --dir certs --node edge-1"],
    "certs init": ["turnout certs init --dir certs --node edge-1 --node edge-2"],
    "export-static": ["turnout export-static --node-cluster default -o envoy-static.yaml"],
}
"""`turnout CMD --help` ends with these (the click commands carry their own)."""


def _add_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                key = f"{path} {name}".strip()
                if key in EXAMPLES:
                    sub.epilog = "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[key])
                    sub.formatter_class = argparse.RawDescriptionHelpFormatter
                _add_examples(sub, key)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="turnout",
        description="Envoy xDS control plane for zero-downtime API migrations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--log-level",
        default=current_settings().log_level,
        help="log level (default: $TURNOUT_LOG_LEVEL or INFO)",
    )
    root.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also show the migration tool's (alembic) INFO lines",
    )
    root.add_argument("--version", action="version", version=f"turnout {_version()}")
    add_log_format_argument(root)
    sub = root.add_subparsers(dest="command", required=True)
    db_help = "database URL (default: $TURNOUT_DATABASE_URL or sqlite:///turnout.db)"

    serve = sub.add_parser("serve", help="run the admin API and the ADS server")
    serve.add_argument("--database-url", help=db_help)
    serve.add_argument("--admin-listen", default="127.0.0.1:8001", metavar="HOST:PORT")
    serve.add_argument("--xds-listen", default="127.0.0.1:18000", metavar="HOST:PORT")
    serve.add_argument(
        "--ratelimit-listen",
        metavar="HOST:PORT",
        help="also answer rate limit calls on this port, on the server of `turnout "
        "ratelimit` (Envoys: `turnout bootstrap --ratelimit-address`), over TLS with the "
        "--xds-tls-* certificate and client CA when given; the xDS port always answers "
        "them too",
    )
    add_serve_arguments(serve)
    _failure_mode_option(serve)
    serve.set_defaults(func=_serve)

    rl = sub.add_parser(
        "ratelimit", help="run only the rate limit service (quotas; Redis: $TURNOUT_REDIS_URL)"
    )
    rl.add_argument("--listen", default="127.0.0.1:18081", metavar="HOST:PORT")
    rl.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="answer over TLS with this certificate (PEM; e.g. the server.pem of `turnout "
        "certs init`, which Envoys bootstrapped with --xds-ca trust)",
    )
    rl.add_argument("--tls-key", type=Path, metavar="FILE", help="its private key (PEM)")
    rl.add_argument(
        "--client-ca",
        type=Path,
        metavar="FILE",
        help="require client certificates signed by this CA (the proxies' mTLS certificates)",
    )
    rl.add_argument(
        "--client-allow-list",
        type=Path,
        metavar="FILE",
        help="YAML list of rules `- names: [glob, ...]`: only certificates with a matching "
        "CN/SAN may call (the --xds-allow-list format, names only)",
    )
    rl.add_argument(
        "--workers",
        default=current_settings().ratelimit_workers,
        metavar="N",
        help="run N processes on the one port (SO_REUSEPORT), e.g. one per core "
        "(default 1; $TURNOUT_RATELIMIT_WORKERS)",
    )
    rl.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the process (each worker) free to run on any CPU; by default each is "
        "pinned to one CPU, which measured twice as many decisions per second or more",
    )
    # A worker of --workers shares the port with its siblings, on the CPU it is given.
    rl.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    rl.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    rl.set_defaults(worker_argv=None)
    _failure_mode_option(rl)
    rl.set_defaults(func=_ratelimit)

    boot = sub.add_parser("bootstrap", help="print an Envoy bootstrap pointing at Turnout")
    boot.add_argument("--node-id", required=True)
    boot.add_argument("--node-cluster", default="default")
    boot.add_argument(
        "--xds-address",
        action="append",
        metavar="HOST:PORT",
        help="a Turnout replica (repeatable; default 127.0.0.1:18000)",
    )
    boot.add_argument("--listener-port", type=int, default=10000)
    boot.add_argument("--listener-address", default="0.0.0.0")
    boot.add_argument("--admin-port", type=int, default=9901)
    boot.add_argument("--delta", action="store_true", help="use Delta xDS (DELTA_GRPC)")
    boot.add_argument(
        "--ratelimit-address",
        action="append",
        metavar="HOST:PORT",
        help="the rate limit service (default: the xDS address, served by `turnout serve`); "
        "repeat for several `turnout ratelimit` hosts (calls go round robin over them)",
    )
    boot.add_argument("-o", "--output", help="write to this file instead of stdout")
    add_bootstrap_arguments(boot)
    boot.set_defaults(func=_bootstrap)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply all migrations")
    upgrade.add_argument("--database-url", help=db_help)
    upgrade.set_defaults(func=_db_upgrade)

    demo = sub.add_parser(
        "demo", help="run Turnout, a real Envoy and two demo upstreams (what `make run` does)"
    )
    demo.add_argument("--database-url", help=db_help)
    demo.set_defaults(func=_demo)
    _add_declarative(sub, db_help)
    imports = sub.add_parser("import", help="import another gateway's configuration")
    import_sub = imports.add_subparsers(dest="import_command", required=True)
    kong = import_sub.add_parser("kong", help="import a decK/Kong declarative file (3.0)")
    kong.add_argument("file", metavar="FILE")
    kong.add_argument("--database-url", help=db_help)
    kong.add_argument("--dry-run", action="store_true", help="report, change nothing")
    kong.set_defaults(func=_import_kong)
    add_commands(sub, db_help)
    _add_examples(root)
    return root


def run(argv: list[str]) -> int:
    """Parse and run one server-side command line (root options first)."""
    args = parser().parse_args(argv)
    if hasattr(args, "worker_argv"):  # `ratelimit --workers` starts itself again
        args.worker_argv = list(argv)
    configure_logging(args.log_level, args.log_format)
    if not args.verbose:
        # Alembic logs every plugin and migration step at INFO: noise for `db upgrade`, `serve`.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    return int(args.func(args))
