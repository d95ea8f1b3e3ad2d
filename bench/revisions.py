"""What revisions, declarative apply and dump cost as the declaration and its history grow.

Builds a declaration of --services services (each with a route and a planned split)
through one `apply`, then makes --steps plan steps (each a revision, as the
controller makes them), and times:

- apply of the whole document (one transaction, one revision),
- dump (load + YAML),
- `declaration_at` for the first and the last revision (audit replay),
- one plan step (a split write with its freeze check and audit event).

    PYTHONPATH=. python bench/revisions.py --services 500 --steps 2000
"""

import argparse
import sys
import tempfile
import time
from typing import Any

from results_io import RESULTS, write_results

from turnout.admin.declarative import dump_yaml, parse_document
from turnout.models.plan import PlanAction
from turnout.storage.plan_steps import step_split
from turnout.storage.store import Store


def document(services: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_format_version": "1", "services": [], "routes": [], "splits": []}
    for i in range(services):
        for suffix in ("", "-v2"):
            doc["services"].append({"name": f"s{i}{suffix}", "url": f"http://10.0.{i % 250}.1"})
        doc["routes"].append({"name": f"r{i}", "service": f"s{i}", "paths": [f"/s{i}"]})
        doc["splits"].append(
            {
                "name": f"p{i}",
                "route": f"r{i}",
                "targets": [
                    {"service": f"s{i}", "weight": 1},
                    {"service": f"s{i}-v2", "weight": 0},
                ],
                "plan": {"target": f"s{i}-v2", "baseline": f"s{i}", "hold_seconds": 60},
            }
        )
    return doc


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def run(services: int, steps: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(database_url or f"sqlite:///{tmp}/bench.db")
        store.upgrade()
        try:
            target = parse_document(document(services))
            apply_ms, _ = timed(lambda: store.apply(target, "bench"))
            step_ms = []
            for i in range(steps):
                name = f"p{i % services}"
                action = PlanAction.ADVANCE if i < services * 4 else PlanAction.ROLLBACK
                ms, _ = timed(lambda n=name, a=action: step_split(store, n, a, "bench", "x"))
                step_ms.append(ms)
            last = store.revision()
            dump_ms, text = timed(lambda: dump_yaml(store.load()))
            first_ms, _ = timed(lambda: store.declaration_at(1))
            last_ms, decl = timed(lambda: store.declaration_at(last))
            assert decl == store.load()
        finally:
            store.close()
    step_ms.sort()
    return {
        "services": services,
        "revisions": last,
        "apply_whole_document_ms": round(apply_ms, 1),
        "plan_step_p50_ms": round(step_ms[len(step_ms) // 2], 2) if step_ms else None,
        "dump_ms": round(dump_ms, 1),
        "dump_bytes": len(text),
        "declaration_at_first_ms": round(first_ms, 1),
        "declaration_at_last_ms": round(last_ms, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    result = run(args.services, args.steps, args.database_url)
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    write_results(result, RESULTS / "revisions.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
