"""Translation time, size and memory of what API keys touch, with many keys.

Builds a declaration with --keys keys over --consumers consumers and --routes
authenticated routes (header keys), then times `build_route_configuration` plus
`build_api_key_auth_config` (the credentials' ECDS resource) and their
deterministic serialization, cold (first translation), after one key was added,
and with the same key set again; and reports both sizes, peak Python memory
(tracemalloc) and the process's RSS growth. "+1 key" is the translation after one
key was added to the same key set (what a key change costs once running; the
running server's memo rebuilds only the ECDS resource then).

    python bench/keys_translate.py --keys 100000 --routes 1 5 50
"""

import argparse
import dataclasses
import resource
import statistics
import sys
import time
import tracemalloc

from results_io import RESULTS, write_results

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.xds.translate import NodeGroup, build_route_configuration
from turnout.xds.translate import api_key_auth as auth_translate
from turnout.xds.translate.credentials import forget_credentials


def declaration(keys: int, consumers: int, routes: int) -> Declaration:
    api_keys = tuple(
        ApiKey(id=f"{i:08d}", consumer=f"c{i % consumers}", key=f"tk_bench_key_{i:012d}_x")
        for i in range(keys)
    )
    return Declaration(
        revision=1,
        services={"svc": ServiceSpec(name="svc", url="http://10.0.0.1:80")},
        consumers={f"c{i}": ConsumerSpec(name=f"c{i}") for i in range(consumers)},
        routes={
            f"r{i}": RouteSpec(name=f"r{i}", paths=[f"/r{i}"], service="svc", auth={})
            for i in range(routes)
        },
        api_keys=api_keys,
    )


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _translate(decl: Declaration) -> tuple[float, int, int]:
    """Both resources keys touch: the RouteConfiguration and the credentials' ECDS
    config, serialized. (Milliseconds, route bytes, ECDS bytes.)"""
    start = time.perf_counter()
    routes = build_route_configuration(decl, NodeGroup())
    keys = auth_translate.build_api_key_auth_config(decl)
    route_bytes = routes.SerializeToString(deterministic=True)
    keys_bytes = keys.SerializeToString(deterministic=True)
    return (time.perf_counter() - start) * 1000, len(route_bytes), len(keys_bytes)


def _clear_caches() -> None:
    forget_credentials()


def run(keys: int, consumers: int, routes: int, repeat: int) -> dict[str, object]:
    decl = declaration(keys, consumers, routes)
    _clear_caches()
    cold_ms, route_bytes, keys_bytes = _translate(decl)
    # One key added: a new declaration (new tuple), every other key unchanged.
    added = []
    for i in range(repeat):
        extra = ApiKey(id=f"z{i:07d}", consumer="c0", key=f"tk_new_key_{i:012d}_x")
        bigger = dataclasses.replace(decl, api_keys=(*decl.api_keys, extra))
        added.append(_translate(bigger)[0])
    unchanged = [_translate(decl)[0] for _ in range(repeat)]
    # Memory: a cold translation again, traced.
    _clear_caches()
    rss_before = rss_mb()
    tracemalloc.start()
    _translate(decl)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "benchmark": "keys_translate",
        "keys": keys,
        "consumers": consumers,
        "auth_routes": routes,
        "cold_ms": round(cold_ms, 1),
        "one_key_added_ms_median": round(statistics.median(added), 1),
        "no_key_change_ms_median": round(statistics.median(unchanged), 1),
        "route_config_bytes": route_bytes,
        "api_keys_config_bytes": keys_bytes,
        "python_peak_mb": round(peak / 2**20, 1),
        "rss_growth_mb": round(rss_mb() - rss_before, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--consumers", type=int, default=1000)
    parser.add_argument("--routes", type=int, nargs="+", default=[1, 5, 50])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    results = [run(k, args.consumers, r, args.repeat) for k in args.keys for r in args.routes]
    print(
        f"{'keys':>7} {'routes':>6} {'cold ms':>8} {'+1 key ms':>9} {'same ms':>8} "
        f"{'RDS MB':>7} {'ECDS MB':>8} {'py peak MB':>10}"
    )
    for r in results:
        print(
            f"{r['keys']:>7} {r['auth_routes']:>6} {r['cold_ms']:>8} "
            f"{r['one_key_added_ms_median']:>9} {r['no_key_change_ms_median']:>8} "
            f"{r['route_config_bytes'] / 2**20:>7.2f} {r['api_keys_config_bytes'] / 2**20:>8.1f} "
            f"{r['python_peak_mb']:>10}"
        )
    write_results(results, RESULTS / "keys_translate.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
