"""Envoy's own cost of one credential-list update: a minimal ADS server pushes the ECDS bytes.

What Envoy spends on a key change, whatever the control plane: the bare SotW server
of `envoy_floor.py` serves Turnout's translation of a declaration with --keys API
keys (one authenticated route), then pushes --updates new versions of the
`api_key_auth` extension config (ECDS), each packed before the clock runs, and
waits for Envoy's ACK of each. Envoy's CPU (utime + stime, /proc/<pid>/stat) over
the updates, per update, for two kinds of update:

- `changed`: one key more each time (what a new key costs);
- `same`: the same credentials under a new version (Envoy decodes and hashes the
  resource, finds the config unchanged and builds nothing: what a resend costs);
- with --shards K, the split design (README): the listener's `api_key_auth` becomes
  the composite filter choosing, by the key's first four characters (`tk_` + one
  base64url character: 64 shards), an `api_key_auth` whose credentials come over ECDS
  per shard, and one key more changes one shard: `sharded_all` resends every shard
  (SotW, as Turnout does today), `sharded_one` sends only the changed one. After
  them, a key of the last changed shard and an old key of another shard must both be
  served (no shard was lost).

Keys are generated like Turnout's (`tk_` + 43 base64url characters), seeded.

Run at several sizes it shows how the cost grows with the number of entries.

    python bench/keys_floor.py --keys 25000 50000 100000 --updates 20 --shards 64
"""

import argparse
import os
import random
import statistics
import string
import sys
import time

from envoy.config.core.v3.config_source_pb2 import ExtensionConfigSource
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.common.matching.v3.extension_matcher_pb2 import ExtensionWithMatcher
from envoy.extensions.filters.http.api_key_auth.v3.api_key_auth_pb2 import ApiKeyAuth, Credential
from envoy.extensions.filters.http.composite.v3.composite_pb2 import (
    Composite,
    DynamicConfig,
    ExecuteFilterAction,
)
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (  # noqa: E501
    HttpConnectionManager,
)
from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest
from envoy.type.matcher.v3.http_inputs_pb2 import HttpRequestHeaderMatchInput
from envoy_floor import FloorServer, _Stream
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message
from keys_to_envoy import cpu_seconds
from results_io import RESULTS, write_results
from served import Fleet, fleet
from xds.core.v3.extension_pb2 import TypedExtensionConfig as XdsExtension
from xds.type.matcher.v3.matcher_pb2 import Matcher

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.testing.processes import wait_for
from turnout.xds.memo import TranslationMemo
from turnout.xds.node import node_group
from turnout.xds.snapshot import TYPE_ORDER, pack
from turnout.xds.translate import EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE, NodeGroup
from turnout.xds.translate.api_key_auth import (
    API_KEY_AUTH_FILTER,
    API_KEY_AUTH_TYPE,
    build_api_key_auth_config,
    build_kong_headers_config,
)
from turnout.xds.translate.cluster import ads_config_source
from turnout.xds.translate.listener import build_listener
from turnout.xds.translate.pipeline import translate

ALPHABET = string.ascii_letters + string.digits + "-_"
"""base64url: the character after `tk_` in a generated key, one shard each."""
PREFIX = "tk_"


def _key(rng: random.Random, shard: str | None = None) -> str:
    body = "".join(rng.choices(ALPHABET, k=43))
    return PREFIX + (shard + body[1:] if shard is not None else body)


def declaration(upstream_url: str, keys: int, extra: int) -> Declaration:
    rng = random.Random(17)
    api_keys = [ApiKey(f"k{i:08d}", "old", _key(rng)) for i in range(keys)]
    # New keys go round the shards, so each update of the sharded run changes one.
    new = random.Random(18)
    api_keys += [
        ApiKey(f"n{i:08d}", "new", _key(new, ALPHABET[i % len(ALPHABET)])) for i in range(extra)
    ]
    return Declaration(
        revision=1,
        services={"api": ServiceSpec(name="api", url=upstream_url)},
        consumers={n: ConsumerSpec(name=n) for n in ("old", "new")},
        routes={"api": RouteSpec(name="api", paths=["/api"], service="api", auth={})},
        api_keys=tuple(api_keys),
    )


def _any(message: Message) -> Any:
    packed = Any()
    packed.Pack(message, deterministic=True)
    return packed


def shard_name(shard: str) -> str:
    return f"{API_KEY_AUTH_FILTER}/{shard}"


def shards(decl: Declaration, only: str | None = None) -> dict[str, Any]:
    """Shard → its ECDS resource: the credentials whose key starts with `tk_` + shard
    (`only`: that shard alone)."""
    by_shard: dict[str, list[Credential]] = {c: [] for c in ALPHABET if only in (None, c)}
    for key in decl.api_keys:
        shard = key.key[len(PREFIX)]
        if only in (None, shard):
            by_shard[shard].append(Credential(key=key.key, client=key.consumer))
    return {
        shard: pack(
            TypedExtensionConfig(
                name=shard_name(shard), typed_config=_any(ApiKeyAuth(credentials=c))
            )
        ).any
        for shard, c in by_shard.items()
    }


def sharded_listener(group: NodeGroup) -> Any:
    """Turnout's listener with `api_key_auth` replaced by the composite filter: the key
    in `apikey` picks its shard's `api_key_auth` (ECDS); no shard matched: 401. Routes
    keep their `ApiKeyAuthPerRoute` under the same filter name (the delegated filter
    reads it: allowed clients, key sources, forwarding)."""

    def execute(config: ExecuteFilterAction) -> Matcher.OnMatch:
        return Matcher.OnMatch(action=XdsExtension(name="shard", typed_config=_any(config)))

    source = ExtensionConfigSource(config_source=ads_config_source(), type_urls=[API_KEY_AUTH_TYPE])
    matcher = Matcher(
        matcher_tree=Matcher.MatcherTree(
            input=XdsExtension(
                name="key", typed_config=_any(HttpRequestHeaderMatchInput(header_name="apikey"))
            ),
            prefix_match_map=Matcher.MatcherTree.MatchMap(
                map={
                    PREFIX + c: execute(
                        ExecuteFilterAction(
                            dynamic_config=DynamicConfig(
                                name=shard_name(c), config_discovery=source
                            )
                        )
                    )
                    for c in ALPHABET
                }
            ),
        ),
        on_no_match=execute(
            ExecuteFilterAction(
                typed_config=TypedExtensionConfig(
                    name=API_KEY_AUTH_FILTER, typed_config=_any(ApiKeyAuth())
                )
            )
        ),
    )
    listener: Listener = build_listener(group)
    network_filter = listener.filter_chains[0].filters[0]
    hcm = HttpConnectionManager()
    network_filter.typed_config.Unpack(hcm)
    for http_filter in hcm.http_filters:
        if http_filter.name == API_KEY_AUTH_FILTER:
            http_filter.typed_config.CopyFrom(
                _any(
                    ExtensionWithMatcher(
                        xds_matcher=matcher,
                        extension_config=TypedExtensionConfig(
                            name="composite", typed_config=_any(Composite())
                        ),
                    )
                )
            )
    network_filter.typed_config.Pack(hcm, deterministic=True)
    return pack(listener).any


class KeysServer(FloorServer):
    sharded = False
    """Give every stream the sharded listener instead of Turnout's."""

    def _on_request(self, stream: _Stream, request: DiscoveryRequest) -> None:
        if self.sharded and stream.listener is None and request.node.id:
            stream.listener = sharded_listener(node_group(request.node))
        super()._on_request(stream, request)


def _measure(
    server: KeysServer, pid: int, steps: list[list[Any]], version: int
) -> tuple[float, float, int]:
    """Push each step's extension configs, wait for its ACK: (Envoy CPU ms per update,
    ACK p50 ms, the last version)."""
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
    cpu = (cpu_seconds(pid) - before) * 1000 / len(steps)
    return round(cpu, 1), round(statistics.median(samples), 1), version


def _serve(f: Fleet, decl: Declaration, sharded: bool) -> tuple[KeysServer, int]:
    """A server with `decl`'s translation (`sharded`: the split design), one Envoy on it."""
    group = NodeGroup(address="127.0.0.1", port=10000, group="default")
    t = translate(decl, group, TranslationMemo())
    skip = (LISTENER_TYPE, ROUTE_TYPE)
    shared = {u: [p.any for p in t.packed[u]] for u in TYPE_ORDER if u not in skip}
    server = KeysServer(shared, [p.any for p in t.packed[ROUTE_TYPE]])
    server.sharded = sharded
    if sharded:
        others = [p.any for p in t.packed[EXTENSION_CONFIG_TYPE] if p.name != API_KEY_AUTH_FILTER]
        shared[EXTENSION_CONFIG_TYPE] = [*shards(decl).values(), *others]
    server.start()
    f.add_envoys(1, server.address, prefix=f"keys-floor-{len(f.proxies)}")
    wait_for(lambda: server.acked(ROUTE_TYPE, "1"), 120, "Envoy to ACK routes")
    return server, f.proxies[-1].proc.pid  # type: ignore[union-attr]


def run(keys: int, updates: int, shard_count: int) -> dict[str, object]:
    figures: dict[str, object] = {}
    with fleet() as f:
        url = f.upstream.url
        first = declaration(url, keys, 0)
        kong = pack(build_kong_headers_config(first)).any
        steps = [declaration(url, keys, i + 1) for i in range(2 * updates)]
        changed = [[pack(build_api_key_auth_config(d)).any, kong] for d in steps[:updates]]
        server, pid = _serve(f, first, False)
        try:
            cpu, ack, version = _measure(server, pid, changed, 1)
            figures |= {"changed_envoy_cpu_ms_per_update": cpu, "changed_ack_p50_ms": ack}
            cpu, ack, version = _measure(server, pid, [changed[-1]] * updates, version)
            figures |= {"same_envoy_cpu_ms_per_update": cpu, "same_ack_p50_ms": ack}
        finally:
            server.stop()
        if shard_count:
            server, pid = _serve(f, first, True)
            try:
                current = shards(first)
                every, one = [], []
                for i, decl in enumerate(steps):
                    shard = ALPHABET[i % len(ALPHABET)]
                    current[shard] = shards(decl, only=shard)[shard]
                    every.append([*current.values(), kong])
                    one.append([current[shard]])
                cpu, ack, version = _measure(server, pid, every[:updates], 1)
                figures |= {
                    "sharded_all_envoy_cpu_ms_per_update": cpu,
                    "sharded_all_ack_p50_ms": ack,
                }
                cpu, ack, version = _measure(server, pid, one[updates:], version)
                figures |= {
                    "sharded_one_envoy_cpu_ms_per_update": cpu,
                    "sharded_one_ack_p50_ms": ack,
                }
                client = f.clients[-1]
                newest, old = steps[-1].api_keys[-1].key, first.api_keys[0].key
                wait_for(
                    lambda: client.get("/api", headers={"apikey": newest}).status_code == 200,
                    10,
                    "the newest key to be served through its shard",
                )
                figures["sharded_other_shards_kept"] = (
                    client.get("/api", headers={"apikey": old}).status_code == 200
                )
                figures["shards"] = len(ALPHABET)
            finally:
                server.stop()
    per_entry = float(figures["changed_envoy_cpu_ms_per_update"]) * 1000 / max(keys, 1)  # type: ignore[arg-type]
    return {
        "benchmark": "keys_floor",
        "keys": keys,
        "updates": updates,
        "api_key_auth_config_bytes": len(changed[-1][0].value),
        **figures,
        "envoy_cpu_us_per_entry": round(per_entry, 2),
        "load_avg": [round(x, 2) for x in os.getloadavg()],  # per size: runs are long
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument(
        "--shards", type=int, default=64, choices=[0, 64], help="64: also the split design"
    )
    args = parser.parse_args()
    results = [run(k, args.updates, args.shards) for k in args.keys]
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
