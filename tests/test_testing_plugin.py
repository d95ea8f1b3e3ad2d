"""The pytest plugin Turnout ships works in a user's suite: run examples/ for real."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_suite_passes_with_the_plugin(tmp_path: Path) -> None:
    # -p loads the plugin as its pytest11 entry point would once Turnout is installed.
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "turnout.testing.plugin",
            "-p", "no:cacheprovider", "--rootdir", str(ROOT / "examples"),
            "--basetemp", str(tmp_path / "t"),
            str(ROOT / "examples" / "gateway_suite"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "2 passed" in result.stdout


def test_docker_backend_skips_with_a_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-rs", "-p", "turnout.testing.plugin",
            "-p", "no:cacheprovider", "--rootdir", str(ROOT / "examples"),
            "--basetemp", str(tmp_path / "t"), "--turnout-backend=docker",
            str(ROOT / "examples" / "gateway_suite"),
        ],
        cwd=ROOT,
        # Ryuk, testcontainers' reaper, is an image that cannot be pulled on CI machines.
        env={**os.environ, "PYTHONPATH": str(ROOT), "TESTCONTAINERS_RYUK_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    from turnout.testing.containers import unavailable

    reason = unavailable()
    if reason is None:  # a Docker engine and testcontainers are here: it must pass
        assert result.returncode == 0, result.stdout[-4000:]
    else:
        assert "2 skipped" in result.stdout, result.stdout[-4000:]
        assert reason in result.stdout
