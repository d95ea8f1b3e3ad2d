"""Role tokens against a real `turnout serve`: tokens made with `turnout token
create`, a viewer cannot write (403, nothing changes), an expired token gets 401,
audit events name the owner; and the admin API over HTTPS."""

import os
import ssl
import subprocess
from pathlib import Path

import httpx

from turnout.testing.processes import (
    AdminClient,
    AdminError,
    TurnoutProcess,
    free_port,
    turnout_command,
    wait_for,
)


def _token(database_url: str, name: str, role: str, *extra: str) -> str:
    out = subprocess.run(
        [*turnout_command(), "token", "create", "--name", name, "--role", role, *extra],
        env={**os.environ, "TURNOUT_DATABASE_URL": database_url},
        check=True,
        capture_output=True,
        text=True,
    )
    assert f"role {role}" in out.stderr
    return out.stdout.strip()


def test_viewer_403_expired_401_operator_audited(
    turnout: TurnoutProcess, admin: AdminClient
) -> None:
    url = turnout.database_url
    viewer = AdminClient(turnout.admin_url, _token(url, "dashboards", "viewer"))
    operator = AdminClient(
        turnout.admin_url, _token(url, "ci-deploy", "operator", "--expires-in", "1h")
    )
    expiring = AdminClient(turnout.admin_url, _token(url, "temp", "admin", "--expires-in", "1s"))
    try:
        before = admin.revision()
        try:
            viewer.create("services", {"name": "blue", "url": "http://127.0.0.1:1"})
            raise AssertionError("a viewer wrote")
        except AdminError as exc:
            assert exc.response.status_code == 403
            assert "role viewer" in exc.response.json()["detail"]
        assert admin.revision() == before
        assert viewer.http.get("/services").json()["items"] == []

        revision = operator.create("services", {"name": "blue", "url": "http://127.0.0.1:1"})
        audit = admin.http.get("/audit", params={"limit": 1}).json()
        assert audit[0]["revision"] == revision and audit[0]["actor"] == "ci-deploy"

        wait_for(lambda: expiring.http.get("/services").status_code == 401, 10, "expiry")
        response = expiring.http.get("/services")
        assert "expired" in response.json()["detail"]
    finally:
        for client in (viewer, operator, expiring):
            client.close()


def test_admin_api_over_tls(database_url: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    subprocess.run([*turnout_command(), "certs", "init", "--dir", str(certs)], check=True)
    port = free_port()
    log = (tmp_path / "turnout.log").open("wb")
    proc = subprocess.Popen(
        [
            *turnout_command(),
            "serve",
            "--admin-listen", f"127.0.0.1:{port}",
            "--xds-listen", f"127.0.0.1:{free_port()}",
            "--admin-tls-cert", str(certs / "server.pem"),
            "--admin-tls-key", str(certs / "server.key"),
        ],
        env={**os.environ, "TURNOUT_DATABASE_URL": database_url, "TURNOUT_ADMIN_TOKEN": "t"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with httpx.Client(
            verify=ssl.create_default_context(cafile=certs / "ca.pem"), timeout=2
        ) as client:

            def up() -> bool:
                try:
                    return client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
                except httpx.HTTPError:
                    assert proc.poll() is None, (tmp_path / "turnout.log").read_text()
                    return False

            wait_for(up, 30, "the admin API over HTTPS")
            response = client.get(
                f"https://127.0.0.1:{port}/services", headers={"Authorization": "Bearer t"}
            )
            assert response.status_code == 200
        with httpx.Client(timeout=2) as plain:
            try:
                plain.get(f"http://127.0.0.1:{port}/healthz")
                raise AssertionError("plain HTTP answered on the TLS listener")
            except httpx.HTTPError:
                pass
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
