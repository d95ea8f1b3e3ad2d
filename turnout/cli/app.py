"""The root `turnout` command (click): global options, exit codes, every group.

Two kinds of command live under it:

- API commands (`get`, `describe`, `create`, `edit`, `delete`, `split`, `plan`,
  `freeze`, `revisions`, `proxies`, `status`, `token`, and `dump`/`diff`/`apply` when
  a server is given) call the admin API at `--server` (or TURNOUT_SERVER, or the
  config file's context) with `--token` (or TURNOUT_TOKEN): roles, freezes and the
  audit actor (the token's owner) apply as for any client.
- Server-side commands (`serve`, `ratelimit`, `bootstrap`, `db upgrade`, `demo`,
  `import kong`, `backup`, `restore`, `verify`, `certs`, `export-static`) run a server
  or open the database (`turnout/cli/server.py`).

Every command is a native click command, so `--help` and shell completion know
every option; `parse()` parses a command line without running it.
"""

import logging
import sys
from importlib import metadata
from typing import Any

import click

from turnout import settings
from turnout.cli.client import EXIT_CODES_HELP, EXIT_USAGE, Api, CliError
from turnout.cli.contexts import context_group, resolve

ROOT_EPILOG = f"""\b
examples:
  turnout serve --database-url sqlite:///turnout.db --admin-listen 127.0.0.1:8001
  export TURNOUT_SERVER=http://127.0.0.1:8001 TURNOUT_TOKEN=...
  turnout get services -o json
  turnout status

\b
API commands use --server/--token (or TURNOUT_SERVER/TURNOUT_TOKEN, or the config
file's current context: `turnout context --help`); `dump`, `diff`, `apply` and `token`
open the database instead when no server is given (or with --database-url).

{EXIT_CODES_HELP}
"""


def _version() -> str:
    try:
        return metadata.version("turnout")
    except metadata.PackageNotFoundError:
        return "unknown"


def api(ctx: click.Context) -> Api:
    """The admin API this invocation talks to; a usage error when none is configured."""
    root = ctx.find_root()
    obj = root.obj
    if obj.get("api") is None:
        target = resolve(obj["config_path"], obj["server"], obj["token"], obj["context"])
        if not target.server:
            raise CliError(
                "no server: give --server URL, set TURNOUT_SERVER, or `turnout context use NAME`",
                EXIT_USAGE,
            )
        obj["api"] = Api(target.server, target.token)
        root.call_on_close(obj["api"].close)
    return obj["api"]


def has_server(ctx: click.Context) -> bool:
    """Whether a server is configured (flag, environment or current context)."""
    obj = ctx.find_root().obj
    target = resolve(obj["config_path"], obj["server"], obj["token"], obj["context"])
    return bool(target.server)


@click.group(
    "turnout",
    epilog=ROOT_EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--server",
    metavar="URL",
    help="the admin API, e.g. http://127.0.0.1:8001 (default: $TURNOUT_SERVER, or the context's)",
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="bearer token for the admin API (default: $TURNOUT_TOKEN, or the context's)",
)
@click.option(
    "--context",
    "context_name",
    metavar="NAME",
    help="use this context of the config file (default: $TURNOUT_CONTEXT, or current-context)",
)
@click.option(
    "--log-level",
    metavar="LEVEL",
    help="log level (default: $TURNOUT_LOG_LEVEL or INFO)",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="text (default) or json: one JSON object per line ($TURNOUT_LOG_FORMAT)",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="also show the migration tool's (alembic) and the API client's (httpx) INFO lines",
)
@click.version_option(_version(), "--version", prog_name="turnout", message="%(prog)s %(version)s")
@click.pass_context
def cli(
    ctx: click.Context,
    server: str | None,
    token: str | None,
    context_name: str | None,
    log_level: str | None,
    log_format: str | None,
    verbose: bool,
) -> None:
    """Envoy xDS control plane for zero-downtime API migrations."""
    from turnout.logjson import configure_logging

    env = settings.current()
    ctx.obj = {
        "server": server or env.server,
        "token": token or env.token,
        "context": context_name or env.context,
        "config_path": env.config_path,
        "log_level": log_level or env.log_level,
        "log_format": log_format or env.log_format,
        "verbose": verbose,
        "api": None,
    }
    try:
        configure_logging(ctx.obj["log_level"], ctx.obj["log_format"])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--log-level") from None
    if not verbose:
        # Alembic logs every plugin and migration step at INFO: noise for `db upgrade`, `serve`.
        logging.getLogger("alembic").setLevel(logging.WARNING)
        # httpx logs every request at INFO: the API commands print their own outcome.
        logging.getLogger("httpx").setLevel(logging.WARNING)


def _register() -> None:
    from turnout.cli import declarative, keys, migration, resources, server

    for command in server.COMMANDS:
        cli.add_command(command)
    cli.add_command(context_group)
    cli.add_command(keys.keys_group)
    for group in (*resources.COMMANDS, *migration.COMMANDS, *declarative.COMMANDS):
        cli.add_command(group)
    cli.add_command(completion)


@click.command(
    "completion",
    epilog="""\b
examples:
  turnout completion bash > ~/.local/share/bash-completion/completions/turnout
  turnout completion zsh > "${fpath[1]}/_turnout"
  turnout completion fish > ~/.config/fish/completions/turnout.fish""",
)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None  # click ships bash, zsh and fish
    click.echo(cls(cli, {}, "turnout", "_TURNOUT_COMPLETE").source())


_register()


def parse(argv: list[str]) -> click.Context:
    """The context of the command `argv` names, its options parsed (defaults, checks:
    click.UsageError if bad) and nothing run: for tests and tools that check a command
    line, e.g. the ones docker-compose.yml runs."""
    ctx = cli.make_context("turnout", list(argv))
    command: click.Command = cli
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert name is not None and sub is not None  # resolve_command fails otherwise
        ctx = sub.make_context(name, rest, parent=ctx)
        command = sub
    return ctx


def run(argv: list[str] | None = None) -> int:
    """Run the CLI; return its exit code instead of exiting (tests call this in-process)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result: Any = cli.main(args=args, prog_name="turnout", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("turnout: aborted", err=True)
        return 1
    return int(result) if isinstance(result, int) else 0
