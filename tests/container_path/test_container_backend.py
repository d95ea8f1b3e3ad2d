"""The pytest plugin's docker backend: the examples/ suite on testcontainers.

Turnout (the image from the real Dockerfile) and Envoy (envoyproxy/envoy) run as
containers with host networking; the suite's own request goes through Envoy to an
upstream on 127.0.0.1.
"""

import os
import re
import subprocess
import sys

import pytest
from dockercli import ROOT


def test_examples_suite_passes_on_the_docker_backend(turnout_image: str) -> None:
    pytest.importorskip("testcontainers", reason="pip install 'turnout[containers]'")
    env = {
        **os.environ,
        # Ryuk, testcontainers' reaper, is an image that cannot be pulled here; the
        # fixtures stop their own containers.
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    }
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", str(ROOT / "examples" / "gateway_suite"),
            "--turnout-backend=docker", f"--turnout-image={turnout_image}",
            "-p", "no:cacheprovider", "-q", "-rs",
        ],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=600,
    )  # fmt: skip
    tail = result.stdout[-3000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary), tail
    assert "skipped" not in summary and "failed" not in summary, tail
