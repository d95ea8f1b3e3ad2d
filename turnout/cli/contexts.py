"""Named contexts: which admin API (and token) the API commands talk to.

The config file (`$TURNOUT_CONFIG`, default ~/.config/turnout/config.yaml):

    current-context: staging
    contexts:
      staging: {server: https://turnout.staging:8001, token: ...}
      prod: {server: https://turnout.prod:8001, token-env: PROD_TURNOUT_TOKEN}

`token-env` names a variable to read the token from, so the file need not hold it.
The file is written with mode 0600 since it may hold tokens.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import yaml

from turnout.cli.client import EXIT_USAGE, CliError
from turnout.cli.output import emit as emit_output
from turnout.cli.output import output_option

MAX_CONTEXTS = 256
"""A bound on the file, so a runaway script cannot grow it without end."""


@dataclass(frozen=True)
class Target:
    """Where an API command goes: resolved from flags, environment and config file."""

    server: str | None
    token: str | None
    context: str | None


def load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"contexts": {}}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CliError(f"config file {path}: {exc}", EXIT_USAGE) from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts", {}), dict):
        raise CliError(f"config file {path}: expected a mapping with `contexts:`", EXIT_USAGE)
    data.setdefault("contexts", {})
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)


def resolve(path: Path, server: str | None, token: str | None, context: str | None) -> Target:
    """Flags and TURNOUT_SERVER/TURNOUT_TOKEN win; the rest comes from the context."""
    data = load(path)
    name = context or data.get("current-context")
    entry: dict[str, Any] = {}
    if name:
        found = data["contexts"].get(name)
        if found is None:
            if context:  # asked for by name: say so; a stale current-context is only unused
                raise CliError(f"context {name!r} is not in {path}", EXIT_USAGE)
        elif isinstance(found, dict):
            entry = found
    if token is None and entry.get("token-env"):
        token = os.environ.get(str(entry["token-env"])) or None
    return Target(
        server=server or entry.get("server"),
        token=token or entry.get("token"),
        context=name if entry else None,
    )


def _path(ctx: click.Context) -> Path:
    return Path(ctx.find_root().obj["config_path"])


@click.group(
    "context",
    epilog="""\b
examples:
  turnout context set staging --server http://127.0.0.1:8001 --token-env STAGING_TOKEN
  turnout context use staging
  turnout context list -o yaml""",
)
def context_group() -> None:
    """Named contexts (server + token) in the config file."""


@context_group.command(
    "list", epilog="\b\nexamples:\n  turnout context list\n  turnout context list -o json"
)
@output_option()
@click.pass_context
def context_list(ctx: click.Context, output: str) -> None:
    """List contexts; the current one is marked (tokens are never shown)."""
    data = load(_path(ctx))
    current = data.get("current-context")
    rows = [
        {
            "name": name,
            "current": name == current,
            "server": (entry or {}).get("server"),
            "token": "env " + str(entry["token-env"])
            if (entry or {}).get("token-env")
            else ("set" if (entry or {}).get("token") else None),
        }
        for name, entry in sorted(data["contexts"].items())
    ]
    emit_output(
        {"current-context": current, "contexts": rows},
        output,
        [
            ("current", lambda r: "*" if r["current"] else ""),
            ("name", lambda r: r["name"]),
            ("server", lambda r: r["server"]),
            ("token", lambda r: r["token"]),
        ],
        rows,
    )


@context_group.command("use", epilog="\b\nexamples:\n  turnout context use prod")
@click.argument("name")
@click.pass_context
def context_use(ctx: click.Context, name: str) -> None:
    """Make NAME the current context."""
    path = _path(ctx)
    data = load(path)
    if name not in data["contexts"]:
        known = ", ".join(sorted(data["contexts"])) or "none"
        raise CliError(f"context {name!r} is not in {path} (known: {known})", EXIT_USAGE)
    data["current-context"] = name
    save(path, data)
    click.echo(f"current context: {name}", err=True)


@context_group.command(
    "set",
    epilog="\b\nexamples:\n"
    "  turnout context set prod --server https://turnout.prod:8001 --token-env PROD_TOKEN",
)
@click.argument("name")
@click.option("--server", help="the admin API's URL, e.g. http://127.0.0.1:8001")
@click.option("--token", help="the bearer token (stored in the file, mode 0600)")
@click.option("--token-env", metavar="VAR", help="read the token from this variable instead")
@click.pass_context
def context_set(
    ctx: click.Context, name: str, server: str | None, token: str | None, token_env: str | None
) -> None:
    """Create or update context NAME (the first one becomes current)."""
    path = _path(ctx)
    data = load(path)
    if name not in data["contexts"] and len(data["contexts"]) >= MAX_CONTEXTS:
        raise CliError(f"{path} has {MAX_CONTEXTS} contexts, the most it may", EXIT_USAGE)
    entry = dict(data["contexts"].get(name) or {})
    for key, value in (("server", server), ("token", token), ("token-env", token_env)):
        if value is not None:
            entry[key] = value
    data["contexts"][name] = entry
    data.setdefault("current-context", name)
    save(path, data)
    click.echo(f"context {name} saved in {path}", err=True)
