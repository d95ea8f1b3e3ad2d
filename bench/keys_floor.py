"""Envoy's own cost of one credential-list update: a minimal ADS server pushes the ECDS bytes.

What Envoy spends on a key change, whatever the control plane: the bare SotW server
of `envoy_floor.py` serves Turnout's translation of a declaration with --keys API
keys (one authenticated route), then pushes --updates new versions of the
`api_key_auth` extension config (ECDS), each packed before the clock runs, and
waits for Envoy's ACK of each. Envoy's CPU (utime + stime, /proc/<pid>/stat) over
the updates, per update, for two kinds of update:

- `changed`: one key more each time (what a new key costs);
- `same`: the same credentials under a new version (Envoy decodes and hashes the
  resource, finds the config unchanged and builds nothing: what a resend costs).

Run at several sizes it shows how the cost grows with the number of entries.

    python bench/keys_floor.py --keys 25000 50000 100000 --updates 20
"""

import argparse
import os
import statistics
import sys
import time

from envoy_floor import FloorServer
from google.protobuf.any_pb2 import Any
from keys_to_envoy import cpu_seconds
from results_io import RESULTS, write_results
from served import fleet

from turnout.models.consumer import ApiKey, ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.testing.processes import wait_for
from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import TYPE_ORDER, pack
from turnout.xds.translate import EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE, NodeGroup
from turnout.xds.translate.api_key_auth import build_api_key_auth_config, build_kong_headers_config
from turnout.xds.translate.pipeline import translate


def declaration(upstream_url: str, keys: int, extra: int) -> Declaration:
    api_keys = [ApiKey(f"k{i:08d}", "old", f"existing-key-{i:012d}") for i in range(keys)]
    api_keys += [ApiKey(f"n{i:08d}", "new", f"tk_new_key_{i:012d}_0123") for i in range(extra)]
    return Declaration(
        revision=1,
        services={"api": ServiceSpec(name="api", url=upstream_url)},
        consumers={n: ConsumerSpec(name=n) for n in ("old", "new")},
        routes={"api": RouteSpec(name="api", paths=["/api"], service="api", auth={})},
        api_keys=tuple(api_keys),
    )


class KeysServer(FloorServer):
    def push(self, type_url: str, resources: list[Any], version: str) -> None:
        """Hand `resources` (already packed) to every stream that asked for `type_url`."""
        with self._lock:
            self._version = version
            self._shared[type_url] = resources
            for s in self._streams:
                if type_url in s.sent:
                    s.sent[type_url] = version
                    s.out.put(self._response(s, type_url))

    def acked(self, type_url: str, version: str) -> bool:
        with self._lock:
            if self.rejections:
                raise RuntimeError(f"Envoy rejected: {self.rejections[:3]}")
            return any(s.acked.get(type_url) == version for s in self._streams)


def run(keys: int, updates: int) -> dict[str, object]:
    with fleet() as f:
        group = NodeGroup(address="127.0.0.1", port=10000, group="default")
        first = declaration(f.upstream.url, keys, 0)
        t = translate(first, group, TranslationMemo())
        skip = (LISTENER_TYPE, ROUTE_TYPE)
        shared = {u: [p.any for p in t.packed[u]] for u in TYPE_ORDER if u not in skip}
        kong = pack(build_kong_headers_config(first)).any
        changed = [
            [pack(build_api_key_auth_config(declaration(f.upstream.url, keys, i + 1))).any, kong]
            for i in range(updates)
        ]
        server = KeysServer(shared, [p.any for p in t.packed[ROUTE_TYPE]]).start()
        figures: dict[str, object] = {}
        try:
            f.add_envoys(1, server.address, prefix="keys-floor")
            wait_for(lambda: server.acked(ROUTE_TYPE, "1"), 60, "Envoy to ACK routes")
            pid = f.proxies[0].proc.pid  # type: ignore[union-attr]
            version = 1
            for kind, steps in (("changed", changed), ("same", [changed[-1]] * updates)):
                samples = []
                before = cpu_seconds(pid)
                for resources in steps:
                    version += 1
                    start = time.perf_counter()
                    server.push(EXTENSION_CONFIG_TYPE, resources, str(version))
                    wait_for(
                        lambda v=str(version): server.acked(EXTENSION_CONFIG_TYPE, v),
                        60,
                        f"Envoy to ACK extension configs {version}",
                    )
                    samples.append((time.perf_counter() - start) * 1000)
                cpu = (cpu_seconds(pid) - before) * 1000 / updates
                figures[f"{kind}_envoy_cpu_ms_per_update"] = round(cpu, 1)
                figures[f"{kind}_ack_p50_ms"] = round(statistics.median(samples), 1)
        finally:
            server.stop()
    return {
        "benchmark": "keys_floor",
        "keys": keys,
        "updates": updates,
        "api_key_auth_config_bytes": len(changed[-1][0].value),
        **figures,
        "envoy_cpu_us_per_entry": round(
            float(figures["changed_envoy_cpu_ms_per_update"]) * 1000 / max(keys, 1),
            2,  # type: ignore[arg-type]
        ),
        "load_avg": [round(x, 2) for x in os.getloadavg()],  # per size: runs are long
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--updates", type=int, default=20)
    args = parser.parse_args()
    results = [run(k, args.updates) for k in args.keys]
    print(
        f"{'keys':>7} {'MB':>5} {'changed: CPU ms':>15} {'ACK p50':>8} "
        f"{'same: CPU ms':>12} {'ACK p50':>8} {'us/entry':>8}"
    )
    for r in results:
        print(
            f"{r['keys']:>7} {r['api_key_auth_config_bytes'] / 2**20:>5.1f} "  # type: ignore[operator]
            f"{r['changed_envoy_cpu_ms_per_update']:>15} {r['changed_ack_p50_ms']:>8} "
            f"{r['same_envoy_cpu_ms_per_update']:>12} {r['same_ack_p50_ms']:>8} "
            f"{r['envoy_cpu_us_per_entry']:>8}"
        )
    write_results(results, RESULTS / "keys_floor.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
