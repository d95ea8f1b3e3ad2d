"""What every benchmark shares: where results go and how percentiles are taken."""

import json
import os
import sys
from pathlib import Path

# The smoke test (tests/test_bench_smoke.py) points this elsewhere so a tiny run never
# overwrites the figures the README quotes.
RESULTS = Path(os.environ.get("TURNOUT_BENCH_RESULTS") or Path(__file__).parent / "results")


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (0 <= p <= 100)."""
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def write_results(results: object, out: Path | str) -> None:
    """Write `results` as JSON to `out` (created with its folder) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Every figure carries the machine's load when it was measured.
    load = [round(x, 2) for x in os.getloadavg()]
    for item in results if isinstance(results, list) else [results]:
        if isinstance(item, dict):
            item.setdefault("load_avg", load)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
