"""`get`, `describe`, `create`, `edit`, `delete`: every kind the admin API serves.

    turnout get services                      GET /services (a table; -o json|yaml)
    turnout get split checkout -o json        GET /splits/checkout
    turnout describe split checkout           the whole object, with its plan's progress
    turnout create -f orders.yaml             POST each document of the file
    turnout create service orders --set url=http://orders:8080
    turnout edit route orders --set priority=10   PATCH /routes/orders
    turnout edit route orders                 the route in $EDITOR, then PATCH
    turnout delete route orders               DELETE /routes/orders

Plans live on splits (`plan` of a split): `get plans` lists the splits that have
one; a plan is started, stepped and stopped with `turnout plan ...`.
"""

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from turnout.cli.client import EXIT_USAGE, CliError
from turnout.cli.output import Column, emit, field, output_option

MAX_SETS = 64
"""How many --set a command takes: a bound on a command line that builds a body."""
MAX_DOCUMENTS = 1000
"""How many objects one `create -f` file may hold."""


def _plan(item: dict[str, Any]) -> str:
    state = item.get("plan_state") or {}
    status = item.get("plan_status") or {}
    if not item.get("plan"):
        return "-"
    pct = status.get("percent")
    return (
        f"{state.get('status', 'pending')} {pct}%"
        if pct is not None
        else state.get("status", "pending")
    )


def _target_percent(item: dict[str, Any]) -> float | None:
    """The share on the plan's target, from the weights (lists carry no plan_status)."""
    target = (item.get("plan") or {}).get("target")
    weights = {t["service"]: t["weight"] for t in item.get("targets", [])}
    total = sum(weights.values())
    return round(100 * weights.get(target, 0) / total, 2) if target and total else None


def _targets(item: dict[str, Any]) -> str:
    return ",".join(f"{t['service']}={t['weight']}" for t in item.get("targets", []))


def _paths(item: dict[str, Any]) -> str:
    return ",".join(p.get("value", "") for p in item.get("paths", [])) or "-"


def _scope(item: dict[str, Any]) -> str:
    scope = item.get("scope") or {}
    if scope.get("all"):
        return "all"
    parts = [f"{k}={','.join(scope[k])}" for k in ("services", "routes", "tags") if scope.get(k)]
    return " ".join(parts)


@dataclass(frozen=True)
class Kind:
    """One kind of object: where it lives in the API and how a table shows it."""

    plural: str
    singular: str
    path: str
    key: str
    columns: Sequence[Column]
    items_key: str | None = "items"
    writable: bool = True
    editable: bool = True

    def list_rows(self, body: Any) -> list[dict[str, Any]]:
        rows = body[self.items_key] if self.items_key and isinstance(body, dict) else body
        return list(rows)


KINDS: dict[str, Kind] = {
    k.plural: k
    for k in (
        Kind(
            "services",
            "service",
            "/services",
            "name",
            [
                ("name", field("name")),
                ("url", field("url")),
                ("endpoints", lambda i: len(i.get("endpoints") or []) or None),
                ("tags", field("tags")),
            ],
        ),
        Kind(
            "routes",
            "route",
            "/routes",
            "name",
            [
                ("name", field("name")),
                ("hosts", field("hosts")),
                ("paths", _paths),
                ("service", field("service")),
                ("priority", field("priority")),
            ],
        ),
        Kind(
            "splits",
            "split",
            "/splits",
            "name",
            [
                ("name", field("name")),
                ("route", field("route")),
                ("targets", _targets),
                ("plan", _plan),
            ],
        ),
        Kind(
            "consumers",
            "consumer",
            "/consumers",
            "name",
            [("name", field("name")), ("tags", field("tags"))],
        ),
        Kind(
            "plans",
            "plan",
            "/splits",
            "name",
            [
                ("split", field("name")),
                ("baseline", field("plan.baseline")),
                ("target", field("plan.target")),
                ("status", field("plan_state.status")),
                ("percent", _target_percent),
                ("steps", field("plan.steps")),
                ("hold_seconds", field("plan.hold_seconds")),
            ],
            writable=False,
        ),
        Kind(
            "freezes",
            "freeze",
            "/freezes",
            "id",
            [
                ("id", field("id")),
                ("state", field("state")),
                ("scope", _scope),
                ("reason", field("reason")),
                ("ends_at", field("ends_at")),
                ("by", field("created_by")),
            ],
            editable=False,
        ),
        Kind(
            "tokens",
            "token",
            "/tokens",
            "name",
            [
                ("name", field("name")),
                ("role", field("role")),
                ("created_by", field("created_by")),
                ("expires_at", field("expires_at")),
            ],
            items_key=None,
            editable=False,
        ),
    )
}
_ALIASES = {k.singular: k.plural for k in KINDS.values()}
KIND_NAMES = sorted([*KINDS, *_ALIASES])


def kind(name: str) -> Kind:
    plural = _ALIASES.get(name, name)
    if plural not in KINDS:
        raise CliError(f"unknown kind {name!r}: one of {', '.join(KINDS)}", EXIT_USAGE)
    return KINDS[plural]


class KindType(click.Choice):  # type: ignore[type-arg]
    """A kind, singular or plural (`service`, `services`), completed by the shell."""

    def __init__(self) -> None:
        super().__init__(KIND_NAMES)


def _api(ctx: click.Context) -> Any:
    from turnout.cli.app import api

    return api(ctx)


def parse_sets(sets: Sequence[str]) -> dict[str, Any]:
    """`a=1 b.c=[x,y]` → {"a": 1, "b": {"c": ["x", "y"]}}; each value is read as YAML."""
    if len(sets) > MAX_SETS:
        raise CliError(f"--set: at most {MAX_SETS}, got {len(sets)}", EXIT_USAGE)
    out: dict[str, Any] = {}
    for item in sets:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise CliError(f"--set {item!r}: expected FIELD=VALUE", EXIT_USAGE)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError as exc:
            raise CliError(f"--set {key}: not a YAML value: {exc}", EXIT_USAGE) from None
        node = out
        *parents, last = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise CliError(f"--set {key}: {part} is already set to a value", EXIT_USAGE)
            node = child
        node[last] = value
    return out


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` over `base`, nested mappings merged (what dotted --set keys mean)."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_documents(path: str) -> list[dict[str, Any]]:
    """The objects of a YAML/JSON file (`-` for stdin): one, a list, or `---` documents."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"{path}: {exc}", EXIT_USAGE) from None
    flat: list[Any] = []
    for doc in docs:
        flat += doc if isinstance(doc, list) else [doc]
    if len(flat) > MAX_DOCUMENTS:
        raise CliError(f"{path}: at most {MAX_DOCUMENTS} objects, got {len(flat)}", EXIT_USAGE)
    for i, doc in enumerate(flat):
        if not isinstance(doc, dict):
            raise CliError(f"{path}: object {i + 1} is not a mapping", EXIT_USAGE)
    return flat


def _get_one(ctx: click.Context, k: Kind, name: str) -> Any:
    if k.plural == "freezes" or k.plural == "tokens":
        # Neither has a GET by id: find it in the list.
        rows = k.list_rows(_api(ctx).get(k.path))
        for row in rows:
            if str(row.get(k.key)) == name:
                return row
        raise CliError(f"404 Not Found: {k.singular} {name!r} does not exist")
    body = _api(ctx).get(f"{k.path}/{name}")
    if k.plural == "plans" and not body.get("plan"):
        raise CliError(f"split {name!r} has no plan (`turnout plan start {name} ...`)")
    return body


@click.command(
    "get",
    epilog="""\b
examples:
  turnout get services
  turnout get routes -o yaml
  turnout get split checkout -o json | jq .targets
  turnout get plans
  turnout get freezes""",
)
@click.argument("kind_name", metavar="KIND", type=KindType())
@click.argument("name", required=False)
@output_option()
@click.pass_context
def get_cmd(ctx: click.Context, kind_name: str, name: str | None, output: str) -> None:
    """List objects of KIND, or show one by NAME.

    KIND: services, routes, splits, consumers, plans, freezes, tokens (or singular)."""
    k = kind(kind_name)
    if name is not None:
        item = _get_one(ctx, k, name)
        emit(item, output, k.columns, [item])
        return
    body = _api(ctx).get(k.path)
    rows = k.list_rows(body)
    if k.plural == "plans":
        rows = [r for r in rows if r.get("plan")]
        body = {"items": rows, "revision": body.get("revision")}
    emit(body, output, k.columns, rows)


@click.command(
    "describe",
    epilog="""\b
examples:
  turnout describe split checkout
  turnout describe route orders -o json""",
)
@click.argument("kind_name", metavar="KIND", type=KindType())
@click.argument("name")
@output_option("yaml")
@click.pass_context
def describe_cmd(ctx: click.Context, kind_name: str, name: str, output: str) -> None:
    """Show one object whole (a split with its plan's progress); yaml by default."""
    k = kind(kind_name)
    item = _get_one(ctx, k, name)
    emit(item, "yaml" if output == "table" else output)


@click.command(
    "create",
    epilog="""\b
examples:
  turnout create service orders --set url=http://orders:8080
  turnout create route orders --set service=orders --set 'paths=[{value: /orders}]'
  turnout create -f objects.yaml      # each object has `kind:` (service, route, ...)
  turnout create services -f orders.yaml
  turnout create token --set name=ci --set role=operator""",
)
@click.argument("kind_name", metavar="[KIND]", required=False, type=KindType())
@click.argument("name", required=False)
@click.option("-f", "--file", "path", metavar="FILE", help="YAML/JSON objects, - for stdin")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="a field (repeatable)")
@output_option()
@click.pass_context
def create_cmd(
    ctx: click.Context,
    kind_name: str | None,
    name: str | None,
    path: str | None,
    sets: tuple[str, ...],
    output: str,
) -> None:
    """Create objects from -f FILE, or one KIND NAME from --set fields (POST).

    In a file without KIND, each object names its own with `kind: service`."""
    if path is None and kind_name is None:
        raise CliError("create: give KIND (with NAME or --set), or -f FILE", EXIT_USAGE)
    docs = read_documents(path) if path else [{}]
    extra = parse_sets(sets)
    created: list[Any] = []
    for doc in docs:
        doc = merge(doc, extra)
        doc_kind = doc.pop("kind", None)
        k = kind(kind_name or doc_kind or "")
        if not k.writable:
            raise CliError(f"{k.plural} are not created directly: see `turnout plan start`")
        if name is not None:
            doc.setdefault(k.key, name)
        answer = _api(ctx).call("POST", k.path, json=doc)
        created.append(answer.body)
        label = answer.body.get(k.key) if isinstance(answer.body, dict) else ""
        rev = answer.revision_note
        click.echo(f"{k.singular} {label} created{rev}", err=True)
        if k.plural == "tokens":
            # The one time the token is shown: on stdout, alone, for `$(...)`.
            click.echo(answer.body["token"])
    if output != "table":
        emit(created[0] if len(created) == 1 else created, output)


def _edit_in_editor(current: dict[str, Any]) -> dict[str, Any]:
    text = click.edit(yaml.safe_dump(current, sort_keys=False), extension=".yaml")
    if text is None:
        raise CliError("edit: the file was not saved; nothing changed")
    try:
        edited = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CliError(f"edit: not valid YAML: {exc}; nothing changed", EXIT_USAGE) from None
    if not isinstance(edited, dict):
        raise CliError("edit: expected a mapping; nothing changed", EXIT_USAGE)
    return {k: v for k, v in edited.items() if current.get(k) != v} | {
        k: None for k in current if k not in edited
    }


@click.command(
    "edit",
    epilog="""\b
examples:
  turnout edit route orders --set priority=10
  turnout edit service orders --set connect_timeout_ms=2000 --set 'tags=[team-a]'
  turnout edit split checkout --set plan.hold_seconds=60
  EDITOR=vim turnout edit route orders      # without --set: edit it in $EDITOR""",
)
@click.argument("kind_name", metavar="KIND", type=KindType())
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="a field (repeatable)")
@output_option()
@click.pass_context
def edit_cmd(
    ctx: click.Context, kind_name: str, name: str, sets: tuple[str, ...], output: str
) -> None:
    """Change fields of one object (PATCH): --set FIELD=VALUE, or in $EDITOR.

    A value is read as YAML (10, true, [a, b], {k: v}); `null` resets a field to its
    default; a dotted FIELD (plan.hold_seconds) changes one key of a nested field."""
    k = kind(kind_name)
    if not k.writable or not k.editable:
        raise CliError(f"{k.plural} cannot be edited", EXIT_USAGE)
    current = _api(ctx).get(f"{k.path}/{name}")
    current.pop("plan_status", None)  # computed by the API, not a field
    if sets:
        changes = parse_sets(sets)
        # PATCH replaces top-level fields whole: send the merged value of each touched one.
        patch = {f: merge({f: current.get(f)}, {f: v})[f] for f, v in changes.items()}
    else:
        patch = _edit_in_editor(current)
        if not patch:
            click.echo("no changes", err=True)
            return
    answer = _api(ctx).call("PATCH", f"{k.path}/{name}", json=patch)
    rev = answer.revision_note
    click.echo(f"{k.singular} {name} updated{rev}", err=True)
    if output != "table":
        emit(answer.body, output)


@click.command(
    "delete",
    epilog="""\b
examples:
  turnout delete route orders
  turnout delete freeze 3
  turnout delete token ci""",
)
@click.argument("kind_name", metavar="KIND", type=KindType())
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@click.pass_context
def delete_cmd(ctx: click.Context, kind_name: str, names: tuple[str, ...]) -> None:
    """Delete objects of KIND by name (a freeze by id: it is lifted)."""
    k = kind(kind_name)
    if not k.writable:
        raise CliError(f"{k.plural} are not deleted directly: see `turnout plan --help`")
    for name in names:
        answer = _api(ctx).call("DELETE", f"{k.path}/{name}")
        rev = answer.revision_note
        click.echo(f"{k.singular} {name} deleted{rev}", err=True)


COMMANDS = (get_cmd, describe_cmd, create_cmd, edit_cmd, delete_cmd)
