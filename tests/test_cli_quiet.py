"""`turnout` is quiet by default: alembic's INFO lines only with -v; --version answers."""

import subprocess
import sys
from pathlib import Path


def _turnout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "turnout.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_prints_no_alembic_info_lines(tmp_path: Path) -> None:
    done = _turnout("db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'q.db'}")
    assert done.returncode == 0, done.stderr
    assert "alembic" not in done.stderr + done.stdout


def test_verbose_shows_alembic_info_lines(tmp_path: Path) -> None:
    done = _turnout("-v", "db", "upgrade", "--database-url", f"sqlite:///{tmp_path / 'v.db'}")
    assert done.returncode == 0, done.stderr
    assert "INFO alembic" in done.stderr


def test_version_prints_the_package_version() -> None:
    done = _turnout("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("turnout ")


def test_help_documents_the_exit_codes() -> None:
    done = _turnout("--help")
    assert done.returncode == 0
    assert "exit codes:" in done.stdout
    assert "2  a usage or configuration error" in done.stdout
