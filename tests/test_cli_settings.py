"""The one settings module: every TURNOUT_* variable, its default, and the precedence
of flags over the environment over the config file's context."""

from pathlib import Path

import pytest

from turnout import settings
from turnout.cli.app import run
from turnout.cli.client import EXIT_USAGE, CliError
from turnout.cli.contexts import resolve, save


def test_defaults_when_nothing_is_set() -> None:
    env = settings.current({"HOME": "/home/ci"})
    assert env.database_url == "sqlite:///turnout.db"
    assert env.redis_prefix == "turnout:rl:"
    assert env.ratelimit_failure_mode == "open"
    assert env.log_level == "INFO"
    assert env.server is None and env.token is None
    assert env.config_path == Path("/home/ci/.config/turnout/config.yaml")


def test_empty_variables_count_as_unset() -> None:
    env = settings.current({"TURNOUT_SECRET_KEY": "", "TURNOUT_DATABASE_URL": ""})
    assert env.secret_key is None
    assert env.database_url == settings.DEFAULT_DATABASE_URL


def test_every_variable_is_read() -> None:
    values = {name: f"value-{i}" for i, name in enumerate(settings.VARIABLES)}
    env = settings.current(values)
    read = {str(v) for v in vars(env).values()}
    missing = [n for n, v in values.items() if v not in read]
    assert missing == []


def test_turnout_config_and_xdg_choose_the_file() -> None:
    assert settings.current({"TURNOUT_CONFIG": "/etc/t.yaml"}).config_path == Path("/etc/t.yaml")
    xdg = settings.current({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}).config_path
    assert xdg == Path("/x/turnout/config.yaml")


def test_storage_reads_the_database_url_through_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.storage import db

    monkeypatch.setenv("TURNOUT_DATABASE_URL", "postgresql+psycopg://u@h/d")
    assert db.database_url_from_env() == "postgresql+psycopg://u@h/d"
    assert settings.database_url("sqlite:///flag.db") == "sqlite:///flag.db"


def test_flags_win_over_the_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    save(
        path,
        {
            "current-context": "a",
            "contexts": {
                "a": {"server": "http://a:1", "token-env": "A_TOKEN"},
                "b": {"server": "http://b:1", "token": "tb"},
            },
        },
    )
    assert path.stat().st_mode & 0o777 == 0o600  # it may hold tokens
    monkeypatch.setenv("A_TOKEN", "ta")
    assert resolve(path, None, None, None).server == "http://a:1"
    assert resolve(path, None, None, None).token == "ta"
    assert resolve(path, None, None, "b").token == "tb"
    flagged = resolve(path, "http://flag:1", "tf", "b")
    assert (flagged.server, flagged.token) == ("http://flag:1", "tf")
    with pytest.raises(CliError) as err:
        resolve(path, None, None, "nope")
    assert err.value.exit_code == EXIT_USAGE


def test_a_bad_config_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("contexts: [1, 2]\n")
    monkeypatch.setenv("TURNOUT_CONFIG", str(path))
    monkeypatch.delenv("TURNOUT_SERVER", raising=False)
    assert run(["get", "services"]) == EXIT_USAGE


def test_completion_scripts_for_each_shell(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert run(["completion", shell]) == 0
        assert "_TURNOUT_COMPLETE" in capsys.readouterr().out


def test_every_command_has_examples_in_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    import click

    from turnout.cli.app import cli
    from turnout.cli.server import COMMANDS

    def walk(cmd: click.Command, path: list[str]) -> list[list[str]]:
        out = [path]
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                out += walk(sub, [*path, name])
        return out

    paths = walk(cli, [])
    # The server-side commands are native click commands: walked like the others.
    assert {c.name for c in COMMANDS} <= {p[0] for p in paths if p}
    lacking = []
    for path in paths:
        assert run([*path, "--help"]) == 0
        if "examples:" not in capsys.readouterr().out:
            lacking.append(" ".join(path))
    assert lacking == []


def test_server_command_help_is_clicks_with_every_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: turnout serve [OPTIONS]")
    for flag in ("--database-url", "--admin-listen", "--xds-tls-cert", "--ratelimit-failure-mode"):
        assert flag in out
    assert run(["import", "kong", "--help"]) == 0
    assert capsys.readouterr().out.startswith("Usage: turnout import kong [OPTIONS] FILE")
    # Hidden worker options stay out of the help.
    assert run(["ratelimit", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--workers" in out and "--reuse-port" not in out and "--cpu" not in out


def test_environment_defaults_are_read_at_parse_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from turnout.cli import parse

    assert parse(["ratelimit"]).params["ratelimit_failure_mode"] == "open"
    monkeypatch.setenv("TURNOUT_RATELIMIT_FAILURE_MODE", "closed")
    monkeypatch.setenv("TURNOUT_RATELIMIT_WORKERS", "3")
    monkeypatch.setenv("TURNOUT_REPLICA_ID", "r-env")
    params = parse(["ratelimit"]).params
    assert (params["ratelimit_failure_mode"], params["workers"]) == ("closed", "3")
    assert parse(["serve"]).params["replica_id"] == "r-env"
    # A flag wins over the variable.
    assert parse(["serve", "--replica-id", "r-flag"]).params["replica_id"] == "r-flag"


def test_bad_option_of_a_server_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(["serve", "--ratelimit-failure-mode", "sideways"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--ratelimit-failure-mode" in err and "sideways" in err
    assert run(["bootstrap"]) == EXIT_USAGE
    assert "--node-id" in capsys.readouterr().err


def test_ratelimit_workers_get_the_parents_options_without_workers() -> None:
    from turnout.cli import parse
    from turnout.cli.server import _worker_options

    argv = ["ratelimit", "--workers", "2", "--listen", "127.0.0.1:9"]
    argv += ["--tls-cert", "s.pem", "--tls-key", "s.key", "--client-ca", "ca.pem", "--no-pin"]
    argv += ["--ratelimit-failure-mode", "closed"]
    options = _worker_options(parse(argv).params)
    assert "--workers" not in options
    worker = parse(["ratelimit", *options]).params
    parent = parse(argv).params
    assert {k: v for k, v in worker.items() if k != "workers"} == {
        k: v for k, v in parent.items() if k != "workers"
    }
