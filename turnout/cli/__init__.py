"""The `turnout` command line: a click application (`app.py`), one module per group.

- `app.py`: the root command, its global options and exit codes;
- `turnout/settings.py` (beside this package, not in it: storage and serve read it
  too, and must not import the CLI): every TURNOUT_* variable and default;
- `client.py`, `output.py`, `contexts.py`: the admin API client, `-o table|json|yaml`,
  the config file's named contexts;
- `resources.py` (get/describe/create/edit/delete), `migration.py` (split, plan, freeze,
  revisions, proxies, status), `declarative.py` (dump/diff/apply, token): API commands;
- `server.py`: the commands that run a server or work on the database; `ops.py`: the
  database form of `token`.
"""

from typing import Any


def main(argv: list[str] | None = None) -> int:
    """Run `turnout` with `argv` (default: the process's); return the exit code."""
    from turnout.cli.app import run

    return run(argv)


def parse(argv: list[str]) -> Any:
    """`argv` parsed, not run: the click context of its command (`app.parse`)."""
    from turnout.cli.app import parse as parse_argv

    return parse_argv(argv)
