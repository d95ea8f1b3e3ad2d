"""Every benchmark under bench/ runs at a tiny size, so none of them rots unnoticed.

These assert that a benchmark runs to the end and that its figures are plausible
(samples taken, paths distinct), never how fast anything was: timing belongs to the
benchmarks themselves, on a quiet machine. Results go to a temporary folder
(`TURNOUT_BENCH_RESULTS`), never over the committed figures in bench/results/.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
PG_URL = os.environ.get("TURNOUT_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("TURNOUT_TEST_REDIS_URL")

# (script, tiny arguments, what it needs)
CASES: list[tuple[str, list[str], str | None]] = [
    ("write_to_served.py", ["--changes", "5", "--envoys", "1"], None),
    ("write_to_served.py", ["--changes", "2", "--envoys", "1", "--present", "30"], None),
    ("envoy_floor.py", ["--changes", "5", "--envoys", "1", "2"], None),
    ("admin_write.py", ["--writes", "5"], None),
    ("translate.py", ["--sizes", "50", "--runs", "1", "--skip-store"], None),
    ("bulk_routes.py", ["--routes", "20", "--repeat", "1"], None),
    ("ads_load.py", ["--streams", "20", "--streams-per-channel", "10", "--changes", "1"], None),
    ("cross_replica.py", ["--changes", "3", "--server-url", PG_URL or ""], "postgresql"),
    (
        "hostile.py",
        [
            *("--unknown", "50", "--flood-requests", "5", "--flood-names", "10"),
            *("--nack-streams", "2", "--nack-writes", "1", "--nack-bytes", "256"),
            *("--churn", "20", "--churn-concurrency", "5"),
            *("--lrs-reports", "5", "--lrs-clusters", "5"),
        ],
        None,
    ),
    (
        "keys_translate.py",
        ["--keys", "100", "--consumers", "10", "--routes", "1", "--repeat", "1"],
        None,
    ),
    ("keys_to_envoy.py", ["--keys", "100", "--new", "3"], None),
    ("keys_floor.py", ["--keys", "100", "--updates", "2"], None),
    (
        "ratelimit_rps.py",
        ["--seconds", "1", "--concurrency", "2", "--connections", "1", "--workers", "1"],
        "redis",
    ),
    ("revisions.py", ["--services", "5", "--steps", "10"], None),
    ("ui_pages.py", ["--splits", "3", "--proxies", "3", "--rounds", "2", "--consumers", "2"], None),
]


def numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return []


@pytest.mark.parametrize(
    ("script", "args", "needs"),
    CASES,
    ids=[c[0] + (" --present" if "--present" in c[1] else "") for c in CASES],
)
def test_benchmark_runs_at_a_tiny_size(
    script: str, args: list[str], needs: str | None, tmp_path: Path
) -> None:
    if needs == "postgresql" and not PG_URL:
        pytest.skip("needs PostgreSQL: set TURNOUT_TEST_DATABASE_URL")
    if needs == "redis" and not REDIS_URL:
        pytest.skip("needs Redis: set TURNOUT_TEST_REDIS_URL")
    env = {**os.environ, "TURNOUT_BENCH_RESULTS": str(tmp_path)}
    if REDIS_URL:
        env.setdefault("TURNOUT_REDIS_URL", REDIS_URL)
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=BENCH.parent,
        env={**env, "PYTHONPATH": str(BENCH.parent)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    written = sorted(tmp_path.glob("*.json"))
    assert written, f"{script} wrote no results:\n{done.stderr[-2000:]}"
    results = [json.loads(p.read_text()) for p in written]
    assert any(n > 0 for n in numbers(results)), f"{script} measured nothing: {results}"
    if script == "write_to_served.py":
        (run,) = results[0]
        # Each sample waited for a route of its own: none was already answered before.
        assert run["trivial_samples"] == 0
        assert run["changes"] == int(args[args.index("--changes") + 1]) and run["p50_ms"] > 0
        present = int(args[args.index("--present") + 1]) if "--present" in args else 0
        assert run["present_routes"] == present
        if present:  # the routes it added were removed again: served by a 404
            assert run["remove_p50_ms"] > 0 and run["floor"]["remove_p50_ms"] > 0
        # The floor was measured in the same run, for the same declaration.
        assert run["floor"]["trivial_samples"] == 0 and run["floor"]["p50_ms"] > 0
        assert run["ratio_p50"] > 0
        assert set(run["goals"]) >= ({"p50_le_2x_floor"} if present else {"p99_le_10ms"})
    if script == "envoy_floor.py":
        runs = results[0]
        assert [r["envoys"] for r in runs] == [1, 2]
        assert all(r["trivial_samples"] == 0 and r["p50_ms"] > 0 for r in runs)
        assert all(r["route_configuration_bytes"] > 0 for r in runs)
    if script == "admin_write.py":
        ops = {r["operation"]: r for r in results[0]}
        assert set(ops) == {"POST /routes", "PATCH /splits/{name}"}
        assert all(r["writes"] == 5 and r["p50_ms"] > 0 for r in ops.values())
    if script == "keys_floor.py":
        (run,) = results[0]
        assert run["keys"] == 100 and run["api_key_auth_config_bytes"] > 100 * 20
        assert run["changed_ack_p50_ms"] > 0 and run["same_ack_p50_ms"] > 0
        # The split design served the newest key through its shard and kept the others.
        assert run["sharded_one_ack_p50_ms"] > 0 and run["sharded_other_shards_kept"] is True
    if script == "keys_to_envoy.py":
        (run,) = results[0]
        # CPU is read from /proc: present, never negative (ticks may round to 0).
        assert run["envoy_cpu_ms_per_key"] >= 0 and run["turnout_cpu_ms_per_key"] >= 0
        assert run["envoy_cpu_ms_per_update"] >= 0 and run["turnout_cpu_ms_per_update"] >= 0
        # Every sample polled Envoy at least once; the ACK round waited for each key.
        assert run["envoy_requests_per_key"] >= 1 and run["acked_p50_ms"] > 0
