"""A Docker engine, the stand-in base images and Turnout's own image, for the container tests.

The engine comes from `tests/container_path/engine.sh start` (which `.ci/run` calls) through
DOCKER_HOST; the upstream images the Dockerfile and docker-compose.yml name are test
stand-ins from `tests/container_path/standins.sh`. Without either, every test here is skipped
with the reason, so a machine without Docker still passes `make test`.
"""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from dockercli import ROOT, docker

IMAGE = "turnout:local"
STANDINS = [
    "python:3.11-slim",
    "envoyproxy/envoy:v1.40-latest",
    "postgres:16",
    "redis:7",
    "hashicorp/http-echo:1.0",
]


@pytest.fixture(scope="session")
def docker_engine() -> str:
    host = os.environ.get("DOCKER_HOST")
    if shutil.which("docker") is None or not host:
        pytest.skip(
            "no Docker engine: run `eval $(tests/container_path/engine.sh start)` (.ci/run does)"
        )
    try:
        docker("version", timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"the Docker engine at {host} does not answer: {exc}")
    missing = [i for i in STANDINS if docker("image", "inspect", i, check=False).returncode]
    if missing:
        pytest.skip(
            f"images {missing} missing: run tests/container_path/standins.sh (.ci/run does)"
        )
    return host


@pytest.fixture(scope="session")
def turnout_image(docker_engine: str) -> str:
    """The real Dockerfile, built as a user builds it (host network for pip)."""
    docker("build", "-q", "--network", "host", "-t", IMAGE, str(ROOT), timeout=1200)
    return IMAGE


@pytest.fixture
def container_names() -> Iterator[list[str]]:
    """Names of containers a test starts; removed afterwards whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        docker("rm", "-f", "-v", name, check=False)
