"""Shell completion reaches the options of the server-side commands (issue 14 item 2):
they are native click commands now, not arguments handed to another parser."""

import os
import subprocess
import sys

from click.shell_completion import BashComplete

from turnout.cli.app import cli


def _complete(args: list[str], incomplete: str) -> list[str]:
    comp = BashComplete(cli, {}, "turnout", "_TURNOUT_COMPLETE")
    return [item.value for item in comp.get_completions(args, incomplete)]


def test_serve_completes_database_url() -> None:
    assert _complete(["serve"], "--da") == ["--database-url"]


def test_nested_server_commands_complete_their_options() -> None:
    assert "--dry-run" in _complete(["import", "kong"], "--d")
    assert "--node" in _complete(["certs", "init"], "--no")
    assert "--old-secret-key" in _complete(["restore"], "--ol")
    assert _complete(["ratelimit", "--ratelimit-failure-mode"], "") == ["open", "closed"]
    # The workers' internal options stay out of completion.
    assert _complete(["ratelimit"], "--reu") == []


def test_the_installed_script_completes_through_the_environment() -> None:
    env = {
        **os.environ,
        "_TURNOUT_COMPLETE": "bash_complete",
        "COMP_WORDS": "turnout serve --da",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-m", "turnout.cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain,--database-url"]
