"""A consumer's API keys: `turnout keys list|create|revoke`, each one admin API call.

A key is shown once, when it is created: `create` prints it alone on stdout (for
`$(...)`), everything else on stderr; `list` shows ids and prefixes, never a key.
"""

from typing import Any

import click

from turnout.cli.output import emit, field, output_option

COLUMNS = [
    ("id", field("id")),
    ("prefix", field("prefix")),
    ("created_at", field("created_at")),
    ("expires_at", field("expires_at")),
]


def _api(ctx: click.Context) -> Any:
    from turnout.cli.app import api

    return api(ctx)


@click.group(
    "keys",
    epilog="""\b
examples:
  turnout keys create acme                       # prints the new key once
  turnout keys create acme --key acme-imported-key-0001 --expires-at 2027-01-01T00:00:00Z
  turnout keys list acme -o json
  turnout keys revoke acme 3f2c9a""",
)
def keys_group() -> None:
    """A consumer's API keys: create (shown once), list (ids and prefixes), revoke."""


@keys_group.command("list", epilog="\b\nexamples:\n  turnout keys list acme -o json")
@click.argument("consumer")
@output_option()
@click.pass_context
def keys_list(ctx: click.Context, consumer: str, output: str) -> None:
    """CONSUMER's keys: id, prefix, created and expiry; never the key itself."""
    body = _api(ctx).get(f"/consumers/{consumer}/keys")
    emit(body, output, COLUMNS, body)


@keys_group.command(
    "create",
    epilog="""\b
examples:
  KEY=$(turnout keys create acme)
  turnout keys create acme --key imported-from-kong-0001   # keep a migrated key""",
)
@click.argument("consumer")
@click.option("--key", "value", metavar="KEY", help="import this key instead of generating one")
@click.option(
    "--expires-at",
    metavar="TIME",
    help="when the key stops working: RFC 3339 with a time zone, e.g. 2027-01-01T00:00:00Z "
    "(the API checks it)",
)
@output_option()
@click.pass_context
def keys_create(
    ctx: click.Context, consumer: str, value: str | None, expires_at: str | None, output: str
) -> None:
    """Create a key for CONSUMER; the key is printed once, alone on stdout."""
    body: dict[str, Any] = {}
    if value is not None:
        body["key"] = value
    if expires_at is not None:
        body["expires_at"] = expires_at
    answer = _api(ctx).call("POST", f"/consumers/{consumer}/keys", json=body)
    created = answer.body
    rev = answer.revision_note
    label = f"key {created['id']} ({created['prefix']}...)"
    click.echo(f"{label} created for {consumer}{rev}", err=True)
    if output == "table":
        click.echo(created["key"])
    else:
        emit(created, output)


@keys_group.command("revoke", epilog="\b\nexamples:\n  turnout keys revoke acme 3f2c9a")
@click.argument("consumer")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@click.pass_context
def keys_revoke(ctx: click.Context, consumer: str, ids: tuple[str, ...]) -> None:
    """Revoke CONSUMER's keys by id (Envoy refuses them once it has the change)."""
    for key_id in ids:
        answer = _api(ctx).call("DELETE", f"/consumers/{consumer}/keys/{key_id}")
        rev = answer.revision_note
        click.echo(f"key {key_id} of {consumer} revoked{rev}", err=True)
