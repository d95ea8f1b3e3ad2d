"""Operations commands of the `turnout` CLI: tokens, certificates, static export,
and the options `serve`/`bootstrap` gained for production.

    turnout token create --name N --role viewer|operator|admin [--expires-in 30d]
    turnout token list
    turnout token delete --name N
    turnout certs init --dir DIR --node envoy-1 [--node ...] [--server-name ...]
    turnout export-static --node-cluster NAME [-o FILE]

The token functions here are the database form of `turnout token` (used without a
server, or with --database-url, so the first role tokens can be made before any admin
API is reachable); with a server, `turnout/cli/declarative.py` calls /tokens instead.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from turnout.cli.settings import current as current_settings
from turnout.logjson import configure_logging

__all__ = [
    "add_bootstrap_arguments",
    "add_commands",
    "add_log_format_argument",
    "add_serve_arguments",
    "bootstrap_extras",
    "configure_logging",
]

CLI_ACTOR = "cli"


def _database_url(arg: str | None) -> str:
    from turnout.cli.settings import database_url

    return database_url(arg)


def add_log_format_argument(root: argparse.ArgumentParser) -> None:
    root.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=current_settings().log_format,
        help="text (default) or json: one JSON object per line",
    )


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin-tls-cert", type=Path, help="serve the admin API over HTTPS")
    parser.add_argument("--admin-tls-key", type=Path)
    parser.add_argument("--xds-tls-cert", type=Path, help="serve xDS over TLS")
    parser.add_argument("--xds-tls-key", type=Path)
    parser.add_argument(
        "--xds-client-ca", type=Path, help="require proxy certificates signed by this CA"
    )
    parser.add_argument(
        "--xds-allow-list", type=Path, help="YAML rules: certificate names -> node ids/clusters"
    )
    parser.add_argument(
        "--replica-id",
        default=current_settings().replica_id,
        help="this replica's name in shared proxy status (default: host-pid)",
    )
    parser.add_argument("--export-static-dir", type=Path, help="keep static Envoy configs here")
    parser.add_argument("--export-static-interval", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument(
        "--export-static-node-cluster",
        action="append",
        dest="export_static_node_clusters",
        metavar="NAME",
        help="node cluster to export (repeatable; default: default)",
    )
    parser.add_argument("--export-static-listener", default="0.0.0.0:10000", metavar="HOST:PORT")


def add_bootstrap_arguments(boot: argparse.ArgumentParser) -> None:
    boot.add_argument(
        "--admin-address", default="127.0.0.1", help="Envoy admin bind address (for scraping)"
    )
    boot.add_argument("--xds-ca", help="CA that signed Turnout's xDS certificate (enables mTLS)")
    boot.add_argument("--client-cert", help="this proxy's client certificate (PEM)")
    boot.add_argument("--client-key", help="its private key (PEM)")


def bootstrap_extras(args: argparse.Namespace) -> dict[str, Any]:
    """BootstrapOptions fields from the production options; ValueError if incomplete."""
    from turnout.bootstrap_replicas import XdsTlsFiles

    out: dict[str, Any] = {
        "more_xds_addresses": tuple((args.xds_address or [])[1:]),
        "admin_address": args.admin_address,
    }
    tls = (args.xds_ca, args.client_cert, args.client_key)
    if any(tls):
        if not all(tls):
            raise ValueError("--xds-ca, --client-cert and --client-key go together")
        out["xds_tls"] = XdsTlsFiles(
            ca=os.path.abspath(args.xds_ca),
            cert=os.path.abspath(args.client_cert),
            key=os.path.abspath(args.client_key),
        )
    return out


def add_commands(sub: Any, db_help: str) -> None:
    token = sub.add_parser("token", help="manage admin tokens with roles")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--database-url", help=db_help)
    create.add_argument("--name", required=True, help="who the token is for")
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    create.add_argument("--expires-in", help="lifetime: 3600, 15m, 12h, 30d (default: never)")
    create.set_defaults(func=_token_create)
    listing = token_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--database-url", help=db_help)
    listing.set_defaults(func=_token_list)
    delete = token_sub.add_parser("delete", help="revoke a token")
    delete.add_argument("--database-url", help=db_help)
    delete.add_argument("--name", required=True)
    delete.set_defaults(func=_token_delete)

    certs = sub.add_parser("certs", help="certificates for mTLS between Turnout and Envoy")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True)
    init = certs_sub.add_parser("init", help="create a CA, a server cert and proxy certs")
    init.add_argument("--dir", default="certs", type=Path, help="output directory")
    init.add_argument("--node", action="append", default=[], help="node id of a proxy (repeatable)")
    init.add_argument(
        "--server-name",
        action="append",
        help="DNS name of Turnout's xDS endpoint (repeatable; default: localhost, turnout)",
    )
    init.add_argument(
        "--server-ip", action="append", help="IP of the xDS endpoint (default: 127.0.0.1)"
    )
    init.set_defaults(func=_certs_init)

    export = sub.add_parser("export-static", help="write a static Envoy config of now")
    export.add_argument("--database-url", help=db_help)
    export.add_argument("--node-cluster", required=True, metavar="NAME")
    export.add_argument("--listener-port", type=int, default=10000)
    export.add_argument("--listener-address", default="0.0.0.0")
    export.add_argument("--admin-port", type=int, default=9901)
    export.add_argument("-o", "--output", help="write to this file instead of stdout")
    export.set_defaults(func=_export_static)


def _token_create(args: argparse.Namespace) -> int:
    from turnout.admin.token_hash import generate_token, hash_token
    from turnout.models.errors import Conflict
    from turnout.storage.store import Store
    from turnout.storage.tokens import Role, TokenStore, parse_duration

    try:
        expires_in = parse_duration(args.expires_in) if args.expires_in else None
    except ValueError as exc:
        print(f"turnout token create: --expires-in: {exc}", file=sys.stderr)
        return 2
    store = Store(_database_url(args.database_url))
    try:
        store.upgrade()
        token = generate_token()
        info = TokenStore(store).create(
            args.name, Role(args.role), hash_token(token), CLI_ACTOR, expires_in
        )
    except Conflict as exc:
        print(f"turnout token create: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    expiry = f", expires {info.expires_at:%Y-%m-%dT%H:%M:%SZ}" if info.expires_at else ""
    print(
        f"# token {info.name!r}, role {info.role.value}{expiry}; shown only once:", file=sys.stderr
    )
    print(token)
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from turnout.storage.store import Store
    from turnout.storage.tokens import TokenStore

    store = Store(_database_url(args.database_url))
    try:
        for t in TokenStore(store).list():
            expires = f"{t.expires_at:%Y-%m-%dT%H:%M:%SZ}" if t.expires_at else "never"
            state = " (expired)" if t.expired() else ""
            print(f"{t.name}\t{t.role.value}\texpires {expires}{state}")
    finally:
        store.close()
    return 0


def _token_delete(args: argparse.Namespace) -> int:
    from turnout.models.errors import NotFound
    from turnout.storage.store import Store
    from turnout.storage.tokens import TokenStore

    store = Store(_database_url(args.database_url))
    try:
        TokenStore(store).delete(args.name, CLI_ACTOR)
    except NotFound as exc:
        print(f"turnout token delete: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _certs_init(args: argparse.Namespace) -> int:
    from turnout.certs import init

    written = init(
        args.dir,
        nodes=args.node,
        server_names=args.server_name or ["localhost", "turnout"],
        server_ips=args.server_ip or ["127.0.0.1"],
    )
    for path in written:
        print(path)
    return 0


def _export_static(args: argparse.Namespace) -> int:
    from turnout.export_static import render, write_atomically
    from turnout.storage.store import Store
    from turnout.xds.translate import NodeGroup

    store = Store(_database_url(args.database_url))
    try:
        decl = store.load()
    finally:
        store.close()
    opts = NodeGroup(args.listener_address, args.listener_port, args.node_cluster)
    text = render(decl, opts, admin_port=args.admin_port)
    if args.output:
        write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return 0
