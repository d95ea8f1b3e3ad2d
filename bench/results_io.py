"""What every benchmark shares: where results go and how percentiles are taken."""

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of `values` (0 <= p <= 100)."""
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def write_results(results: object, out: Path | str) -> None:
    """Write `results` as JSON to `out` (created with its folder) and say where."""
    path = Path(out)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)
