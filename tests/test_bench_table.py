"""The README's benchmark table is bench/table.py's output for the committed JSON."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import table  # noqa: E402  (bench/ is not a package)


def test_readme_table_is_generated_from_the_committed_results() -> None:
    generated = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert generated.count("\n") > 2, "the table has no rows: bench/results/ is empty?"
    readme = table.readme_table((ROOT / "README.md").read_text())
    assert readme == generated, "README's benchmark table drifted: run bench/table.py --write"
