"""`docker` as the tests call it: text output, a timeout, errors raised."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository: its Dockerfile, docker-compose.yml and examples/."""


def docker(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=check, timeout=timeout
    )
