"""`--log-format json`: one JSON object per line."""

import json
import subprocess
import sys


def test_json_log_lines() -> None:
    code = (
        "import logging; from turnout.logjson import configure_logging;"
        "configure_logging('info', 'json');"
        "logging.getLogger('turnout.x').warning('hi %s', 'there')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    line = json.loads(result.stderr.strip())
    assert (
        line["level"] == "WARNING" and line["logger"] == "turnout.x" and line["msg"] == "hi there"
    )
    assert line["ts"].endswith("+00:00")


def test_cli_accepts_log_format() -> None:
    from turnout.cli import parse

    ctx = parse(["--log-format", "json", "db", "upgrade"])
    assert ctx.command_path == "turnout db upgrade"
    assert ctx.find_root().params["log_format"] == "json"
