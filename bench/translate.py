"""Translation + serialization time, the incremental route change, and Store.load().

A synthetic declaration of N services (IP endpoints, so EDS) and N routes, a
fraction of them split between two services, is translated the way the snapshot
cache did before the memo (build every resource, check consistency,
`Any.Pack(deterministic=True)` + SHA-256 each), and through `translate` (what the
cache serves: the memo reuses unchanged results). Timed:

- full: the whole reload translation, and each step on its own;
- incremental: one route changed among N → the new serialized RouteConfiguration
  (what the cache does today: rebuild and pack the whole RouteConfiguration), plus
  two prototypes of what per-route caching would cost (cached `Route` messages;
  cached serialized bytes spliced together), both checked byte-equal to the real one;
- served: `translate` cold, and one write on a warm memo (a route's service changed,
  one route added, one removed with and without hosts, one route's path and priority
  changed, a route on a new host, a service's endpoints changed), wall and CPU of the
  process, each write's declaration in new dicts as `Store.load_since` gives them,
  checked byte-equal to from scratch;
- Store.load() of N services + N routes + splits from SQLite (rows written in one
  transaction, as a bulk import would).

Every figure is the median of --runs runs (after one warm-up).

    .venv/bin/python bench/translate.py --sizes 1000 10000 --runs 5
    .venv/bin/python bench/translate.py --sizes 10000 --profile   # cProfile top functions
"""

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime

from envoy.config.route.v3.route_components_pb2 import VirtualHost
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.any_pb2 import Any
from results_io import RESULTS, write_results

from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.storage.audit import Action, AuditEventRow
from turnout.storage.rows import REVISION_ROW_ID, RevisionRow
from turnout.storage.store import Store
from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import pack
from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    NodeGroup,
    build_clusters,
    build_endpoints,
    build_listener,
    build_route_configuration,
    check_consistent,
)
from turnout.xds.translate.api_key_auth import build_api_key_auth_config, build_kong_headers_config
from turnout.xds.translate.pipeline import translate
from turnout.xds.translate.route import (
    CATCH_ALL_VIRTUAL_HOST,
    HOST_VIRTUAL_HOST_PREFIX,
    build_route,
    host_covers,
    sort_route_entries,
)

OPTS = NodeGroup(address="0.0.0.0", port=10000, group="default")
METHODS = (["GET"], ["GET", "POST"], [], ["PUT", "PATCH", "DELETE"])


# --- the synthetic declaration ---------------------------------------------------------


def make_service(i: int) -> ServiceSpec:
    if i % 3 == 0:
        return ServiceSpec(
            name=f"svc-{i}", url=f"http://10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:8080"
        )
    return ServiceSpec(
        name=f"svc-{i}",
        endpoints=[
            {"address": f"10.{k}.{i // 256 % 256}.{i % 256}", "port": 8080 + k, "weight": k + 1}
            for k in range(1 + i % 3)
        ],
        connect_timeout_ms=500,
    )


def make_route(i: int, n_hosts: int, hostless_every: int, service: str) -> RouteSpec:
    hosts = [] if hostless_every and i % hostless_every == 0 else [f"api-{i % n_hosts}.example.com"]
    paths: list[object] = [f"/r{i}/v1"]
    if i % 10 == 1:
        paths.append({"exact": f"/r{i}/health"})
    if i % 50 == 2:
        paths = [{"regex": f"/r{i}/v[0-9]+/.*"}]
    return RouteSpec(
        name=f"route-{i}",
        hosts=hosts,
        paths=paths,
        methods=METHODS[i % len(METHODS)],
        headers={"x-tenant": f"t{i % 7}"} if i % 5 == 0 else {},
        service=service,
        strip_path=i % 4 == 0 and i % 50 != 2,
        priority=i % 3,
    )


def make_declaration(
    n: int, n_hosts: int, hostless_every: int, split_every: int, revision: int = 1
) -> Declaration:
    services = {s.name: s for s in (make_service(i) for i in range(n))}
    routes = {
        r.name: r for r in (make_route(i, n_hosts, hostless_every, f"svc-{i}") for i in range(n))
    }
    splits = {}
    if split_every:
        for i in range(0, n, split_every):
            split = SplitSpec(
                name=f"split-{i}",
                route=f"route-{i}",
                targets=[
                    {"service": f"svc-{i}", "weight": 90},
                    {"service": f"svc-{(i + 1) % n}", "weight": 10},
                ],
            )
            splits[split.name] = split
    return Declaration(revision=revision, services=services, routes=routes, splits=splits)


def change_one_route(decl: Declaration, i: int) -> Declaration:
    """A copy of `decl` at the next revision where route `i` points at another service."""
    name = f"route-{i}"
    routes = dict(decl.routes)
    routes[name] = decl.routes[name].model_copy(
        update={"service": f"svc-{(i + 7) % len(decl.services)}"}
    )
    return Declaration(
        revision=decl.revision + 1, services=decl.services, routes=routes, splits=decl.splits
    )


# --- timing helpers -------------------------------------------------------------------


def timed(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median wall time in ms over `runs` runs after one warm-up, and the last result."""
    result = fn()
    samples = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), result


def profile(fn: Callable[[], object], top: int = 18) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def packed_size(decl_routes: RouteConfiguration) -> int:
    packed = Any()
    packed.Pack(decl_routes, deterministic=True)
    return len(packed.value)


# --- per-route cache prototypes (what incremental could cost) --------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


class RouteCache:
    """Per-(route entry) cached `Route` messages and their serialized bytes.

    Keyed by the RouteSpec object and the split (pydantic models compare by value;
    here identity of unchanged specs is enough because the store reload keeps
    unchanged specs equal). A prototype for the report, not product code.
    """

    def __init__(self) -> None:
        self.messages: dict[tuple[str, int], tuple[object, object, object]] = {}

    def entry(self, decl: Declaration, splits: dict[str, SplitSpec], entry) -> tuple[object, bytes]:  # type: ignore[no-untyped-def]
        key = (entry.route.name, entry.index)
        split = splits.get(entry.route.name)
        hit = self.messages.get(key)
        if hit is not None and hit[0] == entry.route and hit[1] == split:
            return hit[2]  # type: ignore[return-value]
        route = build_route(entry, split)
        value = (route, _field(3, route.SerializeToString(deterministic=True)))
        self.messages[key] = (entry.route, split, value)
        return value


def virtual_host_plan(decl: Declaration) -> list[tuple[str, list[str], list]]:  # type: ignore[type-arg]
    """The same virtual hosts and entry order as `build_virtual_hosts`, without protobufs."""
    routes = [decl.routes[name] for name in sorted(decl.routes)]
    host_less = [r for r in routes if not r.hosts]
    patterns = sorted({host for r in routes for host in r.hosts})
    plan = []
    for pattern in patterns:
        covering = [r for r in routes if any(host_covers(h, pattern) for h in r.hosts)]
        plan.append(
            (
                HOST_VIRTUAL_HOST_PREFIX + pattern,
                [pattern],
                sort_route_entries(covering + host_less),
            )
        )
    plan.append((CATCH_ALL_VIRTUAL_HOST, ["*"], sort_route_entries(host_less)))
    return plan


def rebuild_from_cached_messages(decl: Declaration, cache: RouteCache) -> bytes:
    splits = {s.route: s for s in decl.splits.values()}
    config = RouteConfiguration(name=f"turnout_routes_{OPTS.group}")
    for name, domains, entries in virtual_host_plan(decl):
        vh = config.virtual_hosts.add(name=name, domains=domains)
        vh.routes.extend(cache.entry(decl, splits, e)[0] for e in entries)
    packed = Any()
    packed.Pack(config, deterministic=True)
    return packed.value


def rebuild_from_cached_bytes(decl: Declaration, cache: RouteCache) -> bytes:
    """Splice cached serialized Route entries: the bytes deterministic serialization
    would produce (fields in number order: name 1, domains 2, routes 3)."""
    splits = {s.route: s for s in decl.splits.values()}
    parts = [RouteConfiguration(name=f"turnout_routes_{OPTS.group}").SerializeToString()]
    for name, domains, entries in virtual_host_plan(decl):
        head = VirtualHost(name=name, domains=domains).SerializeToString(deterministic=True)
        body = b"".join(cache.entry(decl, splits, e)[1] for e in entries)
        parts.append(_field(2, head + body))
    return b"".join(parts)


# --- the measurements -----------------------------------------------------------------


def add_one_route(decl: Declaration, n_hosts: int, hostless_every: int) -> Declaration:
    """A copy of `decl` at the next revision with one more route (a new name and path)."""
    n = len(decl.routes)
    like = make_route(n, n_hosts, hostless_every, "svc-0").model_dump()
    route = RouteSpec.model_validate({**like, "name": "route-added", "paths": ["/added/v1"]})
    routes = {**decl.routes, route.name: route}
    return Declaration(
        revision=decl.revision + 1, services=decl.services, routes=routes, splits=decl.splits
    )


def remove_one_route(decl: Declaration, i: int) -> Declaration:
    """A copy of `decl` at the next revision without route `i` (and its split)."""
    name = f"route-{i}"
    routes = {k: v for k, v in decl.routes.items() if k != name}
    splits = {k: v for k, v in decl.splits.items() if v.route != name}
    return Declaration(
        revision=decl.revision + 1, services=decl.services, routes=routes, splits=splits
    )


def move_one_route(decl: Declaration, i: int) -> Declaration:
    """A copy of `decl` at the next revision where route `i` matches another path (its
    entries move: taken out and put in elsewhere)."""
    name = f"route-{i}"
    routes = dict(decl.routes)
    routes[name] = RouteSpec.model_validate(
        decl.routes[name].model_dump() | {"paths": [f"/moved/{i}/v2"], "priority": 9}
    )
    return Declaration(
        revision=decl.revision + 1, services=decl.services, routes=routes, splits=decl.splits
    )


def add_one_host(decl: Declaration) -> Declaration:
    """A copy of `decl` with one more route on a host no route named before (a new
    virtual host)."""
    route = RouteSpec(
        name="route-new-host", hosts=["new.example.com"], paths=["/new"], service="svc-0"
    )
    return Declaration(
        revision=decl.revision + 1,
        services=decl.services,
        routes={**decl.routes, route.name: route},
        splits=decl.splits,
    )


def change_one_service(decl: Declaration, i: int) -> Declaration:
    """A copy of `decl` where service `i` has other endpoints."""
    name = f"svc-{i}"
    service = ServiceSpec(name=name, endpoints=[{"address": "10.99.0.1", "port": 9090}])
    return Declaration(
        revision=decl.revision + 1,
        services={**decl.services, name: service},
        routes=decl.routes,
        splits=decl.splits,
    )


def _fresh(decl: Declaration) -> Declaration:
    """The same declaration in new dicts, as `Store.load_since` hands back each reload
    (the same spec objects): no identity shortcut on a whole dict."""
    return Declaration(
        revision=decl.revision,
        services=dict(decl.services),
        routes=dict(decl.routes),
        splits=dict(decl.splits),
        consumers=dict(decl.consumers),
        api_keys=decl.api_keys,
    )


def timed_step(
    before: Declaration, after: Declaration, runs: int, do_profile: bool = False
) -> dict[str, object]:
    """Median wall and CPU ms of `translate(after)` right after `translate(before)` on
    the same memo (what the cache does for one write), checked against from scratch."""
    memo = TranslationMemo()
    translate(before, OPTS, memo)
    wall, cpu = [], []
    for _ in range(runs + 1):
        translate(_fresh(before), OPTS, memo)
        step = _fresh(after)
        gc.collect()
        start, start_cpu = time.perf_counter(), time.process_time()
        served = translate(step, OPTS, memo)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    expected = pack(build_route_configuration(after, OPTS)).any.value
    assert served.packed[ROUTE_TYPE][0].any.value == expected, "served bytes differ"
    r: dict[str, object] = {
        "wall_ms": statistics.median(wall[1:]),
        "cpu_ms": statistics.median(cpu[1:]),
    }
    if do_profile:
        translate(_fresh(before), OPTS, memo)
        step = _fresh(after)
        r["profile"] = profile(lambda: translate(step, OPTS, memo))
    return r


def bench_served(
    decl: Declaration, n_hosts: int, hostless_every: int, runs: int, do_profile: bool = False
) -> dict[str, object]:
    """`translate` (what the cache serves): cold, then one write on a warm memo."""
    translate(decl, OPTS, TranslationMemo())  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        gc.collect()  # not timed: the process's CPU is read around `translate` only
        start, start_cpu = time.perf_counter(), time.process_time()
        translate(decl, OPTS, TranslationMemo())
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    cold_ms, cold_cpu = statistics.median(wall), statistics.median(cpu)
    i = len(decl.routes) // 2
    r: dict[str, object] = {"served_cold_ms": cold_ms, "served_cold_cpu_ms": cold_cpu}
    if do_profile:
        r["profile_served_cold"] = profile(lambda: translate(decl, OPTS, TranslationMemo()))
    steps = {
        "served_change_service": change_one_route(decl, i),
        "served_add_route": add_one_route(decl, n_hosts, hostless_every),
        "served_remove_route": remove_one_route(decl, i),
        "served_remove_host_route": remove_one_route(decl, i + 1),
        "served_move_route": move_one_route(decl, i + 1),
        "served_add_host": add_one_host(decl),
        "served_service_endpoints": change_one_service(decl, i + 1),
    }
    for key, after in steps.items():
        step = timed_step(decl, after, runs, do_profile)
        r[f"{key}_ms"], r[f"{key}_cpu_ms"] = step["wall_ms"], step["cpu_ms"]
        if "profile" in step:
            r[f"profile_{key}"] = step["profile"]
    return r


def bench_translate(
    n: int, runs: int, n_hosts: int, hostless_every: int, split_every: int, do_profile: bool
) -> dict[str, object]:
    decl = make_declaration(n, n_hosts, hostless_every, split_every)
    r: dict[str, object] = {
        "benchmark": "translate",
        "services": n,
        "routes": n,
        "splits": len(decl.splits),
        "host_patterns": len({h for x in decl.routes.values() for h in x.hosts}),
        "hostless_routes": sum(1 for x in decl.routes.values() if not x.hosts),
        "runs": runs,
    }

    def full_for(d: Declaration) -> object:
        # What a reload does without memoisation: build, check, pack + hash everything.
        clusters, endpoints = build_clusters(d), build_endpoints(d)
        listener, routes = build_listener(OPTS), build_route_configuration(d, OPTS)
        keys, kong = build_api_key_auth_config(d), build_kong_headers_config(d)
        check_consistent(
            {
                CLUSTER_TYPE: clusters,
                ENDPOINT_TYPE: endpoints,
                EXTENSION_CONFIG_TYPE: [keys, kong],
                LISTENER_TYPE: [listener],
                ROUTE_TYPE: [routes],
            }
        )
        return [pack(m) for m in (*clusters, *endpoints, keys, kong, listener, routes)]

    def full() -> object:
        return full_for(decl)

    r["full_ms"], _ = timed(full, runs)
    r["clusters_ms"], clusters = timed(lambda: build_clusters(decl), runs)
    r["endpoints_ms"], endpoints = timed(lambda: build_endpoints(decl), runs)
    r["routes_build_ms"], routes = timed(lambda: build_route_configuration(decl, OPTS), runs)
    r["listener_ms"], listener = timed(lambda: build_listener(OPTS), runs)
    keys, kong = build_api_key_auth_config(decl), build_kong_headers_config(decl)
    r["check_consistent_ms"], _ = timed(
        lambda: check_consistent(
            {
                CLUSTER_TYPE: clusters,
                ENDPOINT_TYPE: endpoints,
                EXTENSION_CONFIG_TYPE: [keys, kong],
                LISTENER_TYPE: [listener],
                ROUTE_TYPE: [routes],
            }
        ),
        runs,
    )
    r["pack_clusters_endpoints_ms"], _ = timed(
        lambda: ([pack(c) for c in clusters], [pack(e) for e in endpoints]),
        runs,  # type: ignore[attr-defined]
    )
    r["pack_routes_ms"], _ = timed(lambda: pack(routes), runs)  # type: ignore[arg-type]
    r["route_entries"] = sum(len(vh.routes) for vh in routes.virtual_hosts)  # type: ignore[attr-defined]
    r["virtual_hosts"] = len(routes.virtual_hosts)  # type: ignore[attr-defined]
    r["route_config_bytes"] = packed_size(routes)  # type: ignore[arg-type]

    # Incremental: route i changes; today the whole RouteConfiguration is rebuilt.
    i = n // 2
    changed = change_one_route(decl, i)

    def incremental() -> object:
        return pack(build_route_configuration(changed, OPTS))

    r["incremental_ms"], new_packed = timed(incremental, runs)
    expected = new_packed.any.value  # type: ignore[attr-defined]

    r["incremental_full_reload_ms"], _ = timed(lambda: full_for(changed), runs)
    r.update(bench_served(decl, n_hosts, hostless_every, runs, do_profile))

    msg_cache, byte_cache = RouteCache(), RouteCache()
    assert rebuild_from_cached_messages(decl, msg_cache)
    assert rebuild_from_cached_bytes(decl, byte_cache)
    r["incremental_cached_messages_ms"], got = timed(
        lambda: rebuild_from_cached_messages(changed, msg_cache), runs
    )
    assert got == expected, "cached Route messages give other bytes"
    r["incremental_cached_bytes_ms"], got = timed(
        lambda: rebuild_from_cached_bytes(changed, byte_cache), runs
    )
    assert got == expected, "spliced Route bytes differ from deterministic serialization"
    r["incremental_plan_only_ms"], _ = timed(lambda: virtual_host_plan(changed), runs)

    for key, value in list(r.items()):
        if key.endswith("_ms") and isinstance(value, float):
            r[key] = round(value, 2)  # type: ignore[arg-type]
    if do_profile:
        r["profile_full"] = profile(full)
        r["profile_incremental"] = profile(incremental)
    return r


def bench_store_load(
    n: int, runs: int, n_hosts: int, hostless_every: int, split_every: int
) -> dict[str, object]:
    decl = make_declaration(n, n_hosts, hostless_every, split_every)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.upgrade()
        start = time.perf_counter()
        # One transaction, like a bulk import: rows, one revision bump, one audit event.
        with store.write_transaction() as session:
            for kind, specs in (
                ("service", decl.services),
                ("route", decl.routes),
                ("split", decl.splits),
            ):
                session.add_all(ENTITIES[kind].to_row(s) for s in specs.values())
                session.flush()
            rev = session.get_one(RevisionRow, REVISION_ROW_ID)
            rev.value += 1
            session.add(
                AuditEventRow(
                    revision=rev.value,
                    at=datetime.now(UTC),
                    actor="bench",
                    action=Action.CREATE.value,
                    entity_kind="route",
                    entity_name="bulk",
                    before=None,
                    after=None,
                )
            )
            session.info["revision"] = rev.value
        bulk_ms = (time.perf_counter() - start) * 1000
        # A few writes through the normal API, for the per-write cost.
        start = time.perf_counter()
        for k in range(20):
            store.create(
                "route",
                RouteSpec(name=f"extra-{k}", paths=[f"/extra/{k}"], service="svc-0"),
                "bench",
            )
        create_ms = (time.perf_counter() - start) * 1000 / 20
        load_ms, loaded = timed(store.load, runs)
        assert len(loaded.routes) == n + 20 and len(loaded.services) == n
        store.close()
    return {
        "benchmark": "store_load",
        "database": "sqlite",
        "services": n,
        "routes": n + 20,
        "splits": len(decl.splits),
        "bulk_insert_ms": round(bulk_ms, 1),
        "create_one_route_ms": round(create_ms, 2),
        "load_ms": round(load_ms, 1),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hosts", type=int, default=20, help="distinct host patterns")
    parser.add_argument(
        "--hostless-every",
        type=int,
        default=20,
        help="every k-th route has no hosts (0: none); 1 = all host-less",
    )
    parser.add_argument("--split-every", type=int, default=10, help="every k-th route is split")
    parser.add_argument("--profile", action="store_true", help="print cProfile top functions")
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "translate.json"))
    args = parser.parse_args()

    shape = (args.hosts, args.hostless_every, args.split_every)
    results = []
    for n in args.sizes:
        r = bench_translate(n, args.runs, *shape, args.profile)
        if not args.skip_store:
            r["store"] = bench_store_load(n, args.runs, *shape)
        results.append(r)
        print(f"n={n} done", file=sys.stderr, flush=True)

    cols = [
        ("routes", "routes"), ("splits", "splits"), ("route_entries", "entries"),
        ("virtual_hosts", "vhosts"), ("full_ms", "full ms"), ("routes_build_ms", "rds build"),
        ("pack_routes_ms", "rds pack"), ("pack_clusters_endpoints_ms", "cds+eds pack"),
        ("clusters_ms", "cds build"), ("endpoints_ms", "eds build"),
        ("check_consistent_ms", "consist."), ("incremental_ms", "incr ms"),
        ("incremental_cached_messages_ms", "incr msgs"),
        ("incremental_cached_bytes_ms", "incr bytes"),
        ("served_cold_ms", "served cold"), ("served_cold_cpu_ms", "cold cpu"),
        ("served_change_service_cpu_ms", "chg svc cpu"),
        ("served_add_route_cpu_ms", "add cpu"), ("served_remove_route_cpu_ms", "remove cpu"),
        ("served_remove_host_route_cpu_ms", "rm host cpu"),
        ("served_move_route_cpu_ms", "move cpu"), ("served_add_host_cpu_ms", "new host cpu"),
        ("served_service_endpoints_cpu_ms", "svc eps cpu"),
    ]  # fmt: skip
    print(" ".join(f"{h:>12}" for _, h in cols))
    for r in results:
        print(" ".join(f"{r.get(k)!s:>12}" for k, _ in cols))
    if not args.skip_store:
        print(f"{'routes':>12} {'bulk insert':>12} {'create 1':>12} {'load ms':>12}")
        for r in results:
            s = r["store"]
            cells = (s["routes"], s["bulk_insert_ms"], s["create_one_route_ms"], s["load_ms"])  # type: ignore[index]
            print(" ".join(f"{c!s:>12}" for c in cells))
    print(
        f"medians of {args.runs} runs; goals at 10,000: served cold <= 1000 ms, "
        "one route added/removed/changed <= 20 ms of CPU"
    )
    for r in results:
        for key in [k for k in r if k.startswith("profile_")]:
            if key in r:
                print(f"--- {key} (routes={r['routes']}) ---\n{r[key]}")
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
