"""A CI job drives a whole migration through the CLI alone, against a real `turnout serve`.

The CLI runs as a subprocess with TURNOUT_SERVER/TURNOUT_TOKEN and a database URL
that cannot be opened, so any direct database access would fail: everything goes
through the admin API (roles, freezes, the audit actor). Steps: declare (apply, with
a reason), diff exit codes, split weights, plan start/advance, freeze, a frozen write
(423, exit 3), rollback under the freeze, lift, status; `-o json` is parsed throughout.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from turnout.testing.processes import TurnoutProcess, free_port

TOKEN = "cli-migration-token"

DECLARATION: dict[str, Any] = {
    "_format_version": "1",
    "services": [
        {"name": "legacy", "url": "http://legacy.internal:8080"},
        {"name": "modern", "url": "http://modern.internal:8080"},
    ],
    "routes": [{"name": "checkout", "service": "legacy", "paths": ["/checkout"]}],
    "splits": [
        {
            "name": "checkout",
            "route": "checkout",
            "targets": [{"service": "legacy", "weight": 100}, {"service": "modern", "weight": 0}],
        }
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("cli-migration")
    proc = TurnoutProcess(
        f"sqlite:///{tmp / 'server.db'}",
        TOKEN,
        log_path=tmp / "serve.log",
        env={"TURNOUT_SECRET_KEY": "cli-migration-secret-key"},  # API keys need one
    )
    proc.start()
    yield proc
    proc.stop()


class Cli:
    def __init__(self, server: TurnoutProcess, tmp: Path) -> None:
        self.env = {
            **os.environ,
            "TURNOUT_SERVER": server.admin_url,
            "TURNOUT_TOKEN": TOKEN,
            # Opening this would fail: the CLI must not touch a database.
            "TURNOUT_DATABASE_URL": f"sqlite:///{tmp / 'no-such-dir' / 'x.db'}",
            "TURNOUT_CONFIG": str(tmp / "config.yaml"),
        }

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "turnout.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


def test_a_whole_migration_through_the_cli_alone(server: TurnoutProcess, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path)
    decl = tmp_path / "turnout.yaml"
    decl.write_text(yaml.safe_dump(DECLARATION))

    # Declare, with a reason the audit trail keeps (actor: the token's owner, not "cli").
    done = cli("apply", "-f", str(decl), "--reason", "CI run 7")
    assert "create split checkout" in done.stdout
    assert "HTTP Request" not in done.stderr  # quiet by default: no httpx INFO lines
    newest = cli.json("revisions", "list", "--limit", "1")["items"][0]
    assert newest["reason"] == "CI run 7"
    assert newest["actor"] != "cli"

    # diff gates CI: 0 no change, 2 changes, 1 a file that does not parse.
    assert "no changes" in cli("diff", "-f", str(decl)).stdout
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        yaml.safe_dump(
            {
                **DECLARATION,
                "services": [*DECLARATION["services"], {"name": "extra", "url": "http://x:1"}],
            }
        )
    )
    assert "extra" in cli("diff", "-f", str(changed), code=2).stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("services: [{name: 1}]\n")
    cli("diff", "-f", str(broken), code=1)

    services = cli.json("get", "services")["items"]
    assert [s["name"] for s in services] == ["legacy", "modern"]

    # Weights, then a plan: start (1 %), advance (10 %).
    cli("split", "set", "checkout", "legacy=95", "modern=5")
    split = cli.json("get", "split", "checkout")
    assert {t["service"]: t["weight"] for t in split["targets"]} == {"legacy": 95, "modern": 5}
    started = cli.json(
        "plan", "start", "checkout", "--baseline", "legacy", "--target", "modern",
        "--hold", "3600", "--reason", "begin",
    )  # fmt: skip
    assert started["plan_status"]["percent"] == 1.0
    assert started["plan_state"]["status"] == "running"
    advanced = cli.json("plan", "advance", "checkout")
    assert advanced["plan_status"]["percent"] == 10.0
    assert cli.json("get", "plans")["items"][0]["name"] == "checkout"

    # A freeze on the route: a write is refused with 423, shown clearly, exit code 3.
    freeze = cli.json("freeze", "start", "--route", "checkout", "--reason", "incident 42")
    assert freeze["state"] == "active"
    refused = cli("split", "set", "checkout", "legacy=50", "modern=50", code=3)
    assert "423 Locked" in refused.stderr
    assert f"freeze {freeze['id']}: incident 42" in refused.stderr
    cli("edit", "route", "checkout", "--set", "priority=5", code=3)
    assert cli.json("get", "split", "checkout")["plan_status"]["percent"] == 10.0

    # A rollback always goes through, freeze or not.
    rolled = cli.json("plan", "rollback", "checkout", "--reason", "5xx on modern")
    assert rolled["plan_state"]["status"] == "rolled_back"
    weights = {t["service"]: t["weight"] for t in rolled["targets"]}
    assert weights["modern"] == 0 and weights["legacy"] > 0

    status = cli.json("status")
    assert [f["id"] for f in status["freezes"]] == [freeze["id"]]
    assert status["plans"] == [{"split": "checkout", "status": "rolled_back", "targets": weights}]
    cli("freeze", "end", str(freeze["id"]))
    assert cli.json("freeze", "list", "--active")["items"] == []
    cli("edit", "route", "checkout", "--set", "priority=5")
    assert cli.json("get", "route", "checkout")["priority"] == 5
    # Without --set, `edit` opens $EDITOR on the object and PATCHes what changed.
    cli.env["EDITOR"] = "sed -i -e 's/^priority: 5$/priority: 6/'"
    assert "route checkout updated" in cli("edit", "route", "checkout").stderr
    assert cli.json("get", "route", "checkout")["priority"] == 6


def test_errors_name_the_field_and_exit_non_zero(server: TurnoutProcess, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path)
    bad = cli("create", "service", "bad", "--set", "connect_timeout_ms=-1", code=1)
    assert "422" in bad.stderr
    assert "connect_timeout_ms:" in bad.stderr
    missing = cli("get", "route", "nope", code=1)
    assert "404 Not Found" in missing.stderr
    cli.env["TURNOUT_TOKEN"] = "wrong"
    assert "401" in cli("get", "services", code=4).stderr
    cli.env["TURNOUT_SERVER"] = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in cli("get", "services", code=5).stderr


def test_contexts_choose_the_server(server: TurnoutProcess, tmp_path: Path) -> None:
    cli = Cli(server, tmp_path)
    del cli.env["TURNOUT_SERVER"], cli.env["TURNOUT_TOKEN"]
    cli("get", "services", code=2)  # no server anywhere: a usage error
    cli.env["CI_TOKEN"] = TOKEN
    cli("context", "set", "ci", "--server", server.admin_url, "--token-env", "CI_TOKEN")
    cli("context", "set", "elsewhere", "--server", f"http://127.0.0.1:{free_port()}")
    cli("context", "use", "ci")
    listed = cli.json("context", "list")
    assert listed["current-context"] == "ci"
    tokens = {c["name"]: c["token"] for c in listed["contexts"]}
    assert tokens == {"ci": "env CI_TOKEN", "elsewhere": None}  # never the token itself
    assert cli.json("get", "services")["revision"] >= 0
    cli("--context", "elsewhere", "get", "services", code=5)
    token = cli("token", "create", "--name", "ci-viewer", "--role", "viewer").stdout.strip()
    assert token
    viewer = Cli(server, tmp_path)
    viewer.env["TURNOUT_TOKEN"] = token
    assert "403" in viewer("create", "service", "x", "--set", "url=http://x:1", code=4).stderr
    assert [t["name"] for t in cli.json("token", "list")] == ["ci-viewer"]
    cli("token", "delete", "--name", "ci-viewer")


def test_api_keys_created_once_listed_without_the_key_and_revoked(
    server: TurnoutProcess, tmp_path: Path
) -> None:
    cli = Cli(server, tmp_path)
    cli("create", "consumer", "acme-cli")
    made = cli("keys", "create", "acme-cli")
    key = made.stdout.strip()  # the key alone on stdout, once
    assert key.startswith("tk_") and len(key) >= 40
    imported = cli.json("keys", "create", "acme-cli", "--key", "acme-imported-key-0001")
    assert imported["key"] == "acme-imported-key-0001"
    listed = cli("keys", "list", "acme-cli", "-o", "json").stdout
    keys = json.loads(listed)
    assert len(keys) == 2 and imported["id"] in {k["id"] for k in keys}
    for k in keys:
        assert key.startswith(k["prefix"]) or "acme-imported-key-0001".startswith(k["prefix"])
    assert key not in listed and "acme-imported-key-0001" not in listed  # never shown again
    bad = cli("keys", "create", "acme-cli", "--expires-at", "tomorrow", code=1)
    assert "422" in bad.stderr and "expires_at" in bad.stderr
    cli("keys", "revoke", "acme-cli", *(k["id"] for k in keys))
    assert cli.json("keys", "list", "acme-cli") == []
    assert "404" in cli("keys", "list", "nobody", code=1).stderr
