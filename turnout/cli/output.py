"""`-o table|json|yaml`: how every read command prints what the API answered.

json and yaml print the API's answer as it is (for scripts: `-o json | jq`); table
prints chosen columns, one row per item, for people.
"""

import json
from collections.abc import Callable, Sequence
from typing import Any

import click
import yaml

FORMATS = ("table", "json", "yaml")
MAX_CELL = 60
"""A table cell longer than this is cut (with …): a table is for glancing; -o yaml has all."""

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def output_option(default: str = "table") -> Callable[[Any], Any]:
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table for people; json or yaml: the API's answer as it is, for scripts",
    )


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    """A column showing `item[name]` (dotted for nested fields: `plan_state.status`)."""

    def get(item: dict[str, Any]) -> Any:
        value: Any = item
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return get


def cell(value: Any) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ",".join(cell(v) for v in value) or "-"
    elif isinstance(value, dict):
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per row, whatever the value holds
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Aligned columns with an upper-case header; `(none)` for no rows."""
    if not rows:
        return "(none)\n"
    header = [name.upper() for name, _ in columns]
    body = [[cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(columns))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *body]
    ]
    return "\n".join(lines) + "\n"


def dumps(data: Any, fmt: str) -> str:
    """`data` as json (indented) or yaml (block style, keys in the API's order)."""
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def emit(
    data: Any,
    fmt: str,
    columns: Sequence[Column] | None = None,
    rows: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Print `data` as `fmt`; a table shows `rows` (default: `data`) in `columns`."""
    if fmt != "table" or columns is None:
        click.echo(dumps(data, "yaml" if fmt == "table" else fmt), nl=False)
        return
    click.echo(table(rows if rows is not None else data, columns), nl=False)
