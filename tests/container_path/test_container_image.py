"""The image from the real Dockerfile: the CLI, `turnout serve`, a non-root user."""

import uuid

import httpx
from dockercli import docker

from turnout.testing.processes import free_port, http_ok, wait_for


def test_image_runs_the_cli_as_a_non_root_user(turnout_image: str) -> None:
    help_text = docker("run", "--rm", turnout_image, "--help").stdout
    assert "serve" in help_text and "bootstrap" in help_text
    uid = docker("run", "--rm", "--entrypoint", "id", turnout_image, "-u").stdout.strip()
    assert uid == "10001"


def test_turnout_serve_in_the_image_answers_healthz(
    turnout_image: str, container_names: list[str]
) -> None:
    name = f"turnout-test-{uuid.uuid4().hex[:8]}"
    container_names.append(name)
    admin_port, xds_port = free_port(), free_port()
    docker(
        "run", "-d", "--name", name, "--network", "host",
        "-e", "TURNOUT_ADMIN_TOKEN=image-test-token",
        "-e", "TURNOUT_DATABASE_URL=sqlite:////var/lib/turnout/turnout.db",
        turnout_image,
        "serve", "--admin-listen", f"127.0.0.1:{admin_port}",
        "--xds-listen", f"127.0.0.1:{xds_port}",
    )  # fmt: skip
    url = f"http://127.0.0.1:{admin_port}"
    wait_for(lambda: http_ok(f"{url}/healthz"), 60, "turnout serve in its container")
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok", "revision": 0}
    denied = httpx.get(f"{url}/services")
    assert denied.status_code == 401
    assert docker("exec", name, "id", "-un").stdout.strip() == "turnout"
