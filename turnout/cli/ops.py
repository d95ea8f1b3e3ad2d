"""The database form of `turnout token`, and the TLS fields of `turnout bootstrap`.

    turnout token create --name N --role viewer|operator|admin [--expires-in 30d]
    turnout token list
    turnout token delete --name N

The token functions here are the database form of `turnout token` (used without a
server, or with --database-url, so the first role tokens can be made before any admin
API is reachable); with a server, `turnout/cli/declarative.py` calls /tokens instead.
"""

import os
import sys
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

__all__ = ["bootstrap_extras"]

CLI_ACTOR = "cli"


def _database_url(arg: str | None) -> str:
    from turnout.settings import database_url

    return database_url(arg)


def bootstrap_extras(
    xds_address: Sequence[str],
    admin_address: str,
    xds_ca: str | None,
    client_cert: str | None,
    client_key: str | None,
) -> dict[str, Any]:
    """BootstrapOptions fields from the production options; ValueError if incomplete."""
    from turnout.bootstrap_replicas import XdsTlsFiles

    out: dict[str, Any] = {
        "more_xds_addresses": tuple(xds_address[1:]),
        "admin_address": admin_address,
    }
    if xds_ca or client_cert or client_key:
        if not (xds_ca and client_cert and client_key):
            raise ValueError("--xds-ca, --client-cert and --client-key go together")
        out["xds_tls"] = XdsTlsFiles(
            ca=os.path.abspath(xds_ca),
            cert=os.path.abspath(client_cert),
            key=os.path.abspath(client_key),
        )
    return out


def _token_create(args: SimpleNamespace) -> int:
    from pydantic import ValidationError

    from turnout.models.errors import Conflict
    from turnout.models.token import TokenCreate, parse_duration

    try:
        expires_in = parse_duration(args.expires_in) if args.expires_in else None
    except ValueError as exc:
        print(f"turnout token create: --expires-in: {exc}", file=sys.stderr)
        return 2
    try:
        # The body `POST /tokens` takes, so both paths refuse the same names.
        body = TokenCreate(
            name=args.name,
            role=args.role,
            expires_in_seconds=int(expires_in.total_seconds()) if expires_in else None,
        )
    except ValidationError as exc:
        problems = "; ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        print(f"turnout token create: {problems}", file=sys.stderr)
        return 2
    from turnout.storage.store import Store

    store = Store(_database_url(args.database_url))
    try:
        store.upgrade()
        created, _revision = store.tokens.create(body, CLI_ACTOR)
    except Conflict as exc:
        print(f"turnout token create: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    expiry = f", expires {created.expires_at:%Y-%m-%dT%H:%M:%SZ}" if created.expires_at else ""
    print(
        f"# token {created.name!r}, role {created.role.value}{expiry}; shown only once:",
        file=sys.stderr,
    )
    print(created.token)
    return 0


def _token_list(args: SimpleNamespace) -> int:
    from turnout.storage.store import Store

    store = Store(_database_url(args.database_url))
    try:
        for t in store.tokens.list():
            expires = f"{t.expires_at:%Y-%m-%dT%H:%M:%SZ}" if t.expires_at else "never"
            state = " (expired)" if t.expired() else ""
            print(f"{t.name}\t{t.role.value}\texpires {expires}{state}")
    finally:
        store.close()
    return 0


def _token_delete(args: SimpleNamespace) -> int:
    from turnout.models.errors import NotFound
    from turnout.storage.store import Store

    store = Store(_database_url(args.database_url))
    try:
        store.tokens.delete(args.name, CLI_ACTOR)
    except NotFound as exc:
        print(f"turnout token delete: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
