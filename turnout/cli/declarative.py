"""`dump`, `diff`, `apply` and `token`: through the admin API when a server is given.

With `--server` (or TURNOUT_SERVER, or a context) and no `--database-url`, they call
the API (`GET /config`, `POST /config`, `/tokens`): the token's role and active
freezes apply, and the audit actor is the token's owner, with `--reason` recorded.
With `--database-url`, or no server at all, they open the database directly, as
before (the actor is then `cli`): for the first token of a fresh install, and for
scripts that predate the API form.
"""

import sys
from types import SimpleNamespace
from typing import Any

import click
import yaml

from turnout.cli.client import EXIT_FAILED, EXIT_USAGE, ApiError, CliError
from turnout.cli.output import emit, output_option
from turnout.cli.resources import KINDS
from turnout.settings import current as current_settings
from turnout.settings import database_url as resolve_database_url

_database_url = click.option(
    "--database-url",
    metavar="URL",
    help="open this database instead of calling the API (default without a server: "
    "$TURNOUT_DATABASE_URL or sqlite:///turnout.db)",
)


def _use_api(ctx: click.Context, database_url: str | None) -> bool:
    from turnout.cli.app import has_server

    return database_url is None and has_server(ctx)


def _api(ctx: click.Context) -> Any:
    from turnout.cli.app import api

    return api(ctx)


def _with_store(database_url: str | None, run: Any, *args: Any, **kw: Any) -> int:
    from turnout.storage.store import Store

    store = Store(resolve_database_url(database_url), secret_key=current_settings().secret_key)
    try:
        store.upgrade()
        return int(run(store, *args, **kw))
    finally:
        store.close()


def _read(path: str) -> str:
    from pathlib import Path

    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise CliError(f"{path}: {exc}", EXIT_USAGE) from None


@click.command(
    "dump",
    epilog="""\b
examples:
  turnout --server http://127.0.0.1:8001 dump > turnout.yaml     # GET /config
  turnout dump --database-url sqlite:///turnout.db > turnout.yaml  # the database""",
)
@_database_url
@click.pass_context
def dump_cmd(ctx: click.Context, database_url: str | None) -> int:
    """Print the whole declaration as YAML (what `apply -f` takes back)."""
    if _use_api(ctx, database_url):
        document = _api(ctx).get("/config")
        click.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)
        return 0
    from turnout import config_file

    return _with_store(database_url, config_file.dump, sys.stdout)


@click.command(
    "diff",
    epilog="""\b
examples:
  turnout diff -f turnout.yaml; echo $?     # 0 no change, 2 changes, 1 an error
  turnout --server $TURNOUT_SERVER diff -f - < turnout.yaml""",
)
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="YAML, - for stdin")
@_database_url
@click.pass_context
def diff_cmd(ctx: click.Context, path: str, database_url: str | None) -> int:
    """Show what applying FILE would change; exit 0 no change, 2 changes, 1 an error."""
    from turnout import config_file
    from turnout.admin.declarative import DocumentError, load_yaml, parse_document

    if not _use_api(ctx, database_url):
        return _with_store(database_url, config_file.diff_file, path, sys.stdout)
    try:
        target = load_yaml(_read(path))
    except (DocumentError, CliError) as exc:
        click.echo(f"turnout diff: {path}: {exc}", err=True)
        return config_file.DIFF_ERROR
    try:
        current_doc = _api(ctx).get("/config")
        current = _declaration(parse_document(current_doc), current_doc)
        api = _api(ctx)
        return config_file.print_diff(
            current,
            target,
            sys.stdout,
            lambda name: len(api.get(f"/consumers/{name}/keys")),
        )
    except CliError as exc:
        exc.show()
        return config_file.DIFF_ERROR  # diff's codes are decK's: every error is 1


def _declaration(target: Any, document: dict[str, Any]) -> Any:
    from turnout.models.declaration import Declaration
    from turnout.models.entities import ENTITIES

    return Declaration(
        revision=int(document.get("revision") or 0),
        **{ent.plural: target.get(kind, {}) for kind, ent in ENTITIES.items()},
    )


@click.command(
    "apply",
    epilog="""\b
examples:
  turnout apply -f turnout.yaml --reason "CI run 1234"
  turnout apply -f turnout.yaml --dry-run
  turnout apply -f team-a.yaml --select-tag team-a
  turnout apply -f turnout.yaml --database-url sqlite:///turnout.db   # the database""",
)
@click.option("-f", "--file", "path", required=True, metavar="FILE", help="YAML, - for stdin")
@click.option("--dry-run", is_flag=True, help="check everything (freezes too), change nothing")
@click.option("--select-tag", metavar="T", help="manage only entities tagged T")
@click.option(
    "--delete-keys",
    is_flag=True,
    help="allow deleting consumers that have API keys (their keys go too)",
)
@click.option("--reason", default="", help="recorded in the audit event and the revision (API)")
@_database_url
@click.pass_context
def apply_cmd(
    ctx: click.Context,
    path: str,
    dry_run: bool,
    select_tag: str | None,
    delete_keys: bool,
    reason: str,
    database_url: str | None,
) -> int:
    """Make the declaration equal to FILE, all or nothing (POST /config)."""
    from turnout import config_file

    if not _use_api(ctx, database_url):
        return _with_store(
            database_url,
            config_file.apply_file,
            path,
            sys.stdout,
            dry_run=dry_run,
            select_tag=select_tag,
            delete_keys=delete_keys,
        )
    try:
        document = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise CliError(
            f"apply: {path}: not valid YAML: {exc}; nothing changed", EXIT_USAGE
        ) from None
    try:
        answer = _api(ctx).call(
            "POST",
            "/config",
            json=document,
            params={
                "dry_run": "true" if dry_run else None,
                "select_tag": select_tag,
                "delete_keys": "true" if delete_keys else None,
                "reason": reason or None,
            },
        )
    except ApiError as exc:
        raise CliError(f"apply: {exc.format_message()}\nnothing changed", exc.exit_code) from None
    changes = answer.body["changes"]
    for change in changes:
        click.echo(change)
    if dry_run:
        click.echo(f"dry run: {len(changes)} change(s), nothing written")
    else:
        click.echo(f"revision {answer.body['revision']}: {len(changes)} change(s)")
    return 0


@click.group(
    "token",
    epilog="""\b
examples:
  turnout token create --name ci --role operator --expires-in 30d   # prints the token once
  turnout token list -o json
  turnout token delete --name ci

\b
With a server these call /tokens (admin role); without one (or with --database-url)
they write the database directly, to make the first tokens of a fresh install.""",
)
def token_group() -> None:
    """Admin tokens with roles (viewer, operator, admin)."""


@token_group.command(
    "create", epilog="\b\nexamples:\n  turnout token create --name ci --role operator"
)
@click.option("--name", required=True, help="who the token is for (the audit actor)")
@click.option("--role", required=True, type=click.Choice(["viewer", "operator", "admin"]))
@click.option("--expires-in", metavar="DURATION", help="3600, 15m, 12h, 30d (default: never)")
@_database_url
@click.pass_context
def token_create(
    ctx: click.Context, name: str, role: str, expires_in: str | None, database_url: str | None
) -> int:
    """Create a token and print it once (stdout; the rest goes to stderr)."""
    from turnout.cli import ops
    from turnout.models.token import parse_duration

    if not _use_api(ctx, database_url):
        args = SimpleNamespace(
            database_url=database_url, name=name, role=role, expires_in=expires_in
        )
        return ops._token_create(args)  # type: ignore[arg-type]
    body: dict[str, Any] = {"name": name, "role": role}
    if expires_in:
        try:
            body["expires_in_seconds"] = int(parse_duration(expires_in).total_seconds())
        except ValueError as exc:
            raise CliError(f"token create: --expires-in: {exc}", EXIT_USAGE) from None
    created = _api(ctx).call("POST", "/tokens", json=body).body
    expiry = f", expires {created['expires_at']}" if created.get("expires_at") else ""
    click.echo(f"# token {name!r}, role {role}{expiry}; shown only once:", err=True)
    click.echo(created["token"])
    return 0


@token_group.command("list", epilog="\b\nexamples:\n  turnout token list -o yaml")
@_database_url
@output_option()
@click.pass_context
def token_list(ctx: click.Context, database_url: str | None, output: str) -> int:
    """List tokens (never the tokens themselves)."""
    from turnout.cli import ops

    if not _use_api(ctx, database_url):
        if output != "table":
            raise CliError("token list -o json|yaml needs the API (--server)", EXIT_USAGE)
        return ops._token_list(SimpleNamespace(database_url=database_url))  # type: ignore[arg-type]
    tokens = _api(ctx).get("/tokens")
    emit(tokens, output, KINDS["tokens"].columns, tokens)
    return 0


@token_group.command("delete", epilog="\b\nexamples:\n  turnout token delete --name ci")
@click.option("--name", required=True, help="the token to revoke")
@_database_url
@click.pass_context
def token_delete(ctx: click.Context, name: str, database_url: str | None) -> int:
    """Revoke a token."""
    from turnout.cli import ops

    if not _use_api(ctx, database_url):
        code = ops._token_delete(SimpleNamespace(database_url=database_url, name=name))  # type: ignore[arg-type]
        return code if code == 0 else EXIT_FAILED
    _api(ctx).call("DELETE", f"/tokens/{name}")
    click.echo(f"token {name} revoked", err=True)
    return 0


COMMANDS = (dump_cmd, diff_cmd, apply_cmd, token_group)
