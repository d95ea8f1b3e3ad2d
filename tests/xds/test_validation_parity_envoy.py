"""Property: every declaration the admin API accepts, a real Envoy accepts.

Hypothesis generates declarations from the specs' shapes — services with policies,
routes with paths, regexes, headers, policies, auth and limits, splits with pins
and stickiness, consumers — with hostile strings mixed in (control characters,
CR/LF/NUL, lone surrogates, unicode, long strings, regex metacharacters). Each
entity goes through what `POST /<entities>` does: the pydantic spec, then
`Store.create` with its cross-entity checks on a real SQLite database. What is
accepted is exported with `turnout export-static` (`render`) and loaded by
`envoy --mode validate`, which runs Envoy's proto validation and builds every
listener, route, regex, cluster and TLS context. Not one accepted declaration may
be refused.

Reproducible: a fixed profile (`derandomize`, no example database); the number of
examples per property is TURNOUT_PARITY_EXAMPLES (default 100: about a minute each
on an idle machine, one Envoy run per example).
"""

import itertools
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from turnout.certs import make_ca
from turnout.export_static import render
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import TurnoutError
from turnout.models.key import KeyCreate
from turnout.storage.store import Store
from turnout.xds.translate import NodeGroup

ENVOY = Path(sys.executable).parent / "envoy"
pytestmark = pytest.mark.skipif(not ENVOY.exists(), reason="no envoy beside the interpreter")
EXAMPLES = int(os.environ.get("TURNOUT_PARITY_EXAMPLES", "100"))
_BASE_IDS = itertools.count((os.getpid() % 50_000) * 100 + 7)

settings.register_profile(
    "parity",
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: a failure prints its whole example at once, in bounded time.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strings -------------------------------------------------------------------

HOSTILE = [
    "", " ", "\t", "\r", "\n", "\r\n", "\x00", "\x01", "\x1e", "\x7f", "\x85", "\u2028",
    "é", "☃", "\u202e", "\ud800", "\udfff", "%", "%s", "%DYNAMIC_METADATA(a:b)%", "\\",
    "\\1", "\\9", "/", "//", "*", "*.", ".", "..", ":", ";", "=", '"', ",", "#", "?", "&",
    "{key}", "{", "}", "(", ")", "[", "]", "|", "^", "$", ".*", "-", "_", "~", "@", "+",
    "a" * 300, "A" * 5000, "x\r\nx-injected: 1",
]  # fmt: skip
_any_text = st.text(st.characters(), max_size=24)


def _splice(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A valid-looking string with a hostile piece inserted somewhere."""
    return st.builds(
        lambda v, h, i: v[: i % (len(v) + 1)] + h + v[i % (len(v) + 1) :],
        valid,
        st.sampled_from(HOSTILE),
        st.integers(0, 64),
    )


def rarely(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `valid` (~19 in 20), else `bad`: an entity has tens of such fields, so a
    fair share of entities is wholly valid and reaches Envoy."""
    # Hypothesis favours the ends of a range, so 0 comes up about twice as often as 1/40.
    return st.sampled_from(range(40)).flatmap(lambda i: bad if i == 0 else valid)


def mixed(valid: st.SearchStrategy[str], bad: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """Mostly `valid`, else spliced with hostile pieces, one of `bad`, or anything."""
    hostile = [_splice(valid), st.sampled_from(HOSTILE), _any_text]
    return rarely(valid, st.one_of(*hostile, *([st.sampled_from(bad)] if bad else [])))


def pick(*values: str, bad: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    """One of `values` (which may hold edge cases Envoy must take), rarely a bad one."""
    return mixed(st.sampled_from(values), bad)


def numbers(*typical: int) -> st.SearchStrategy[int]:
    return rarely(st.sampled_from(typical), st.integers(-2, 2**33))


SERVICES = ["orders", "orders-v2", "Legacy.API~1", "plain"]
ROUTES = ["r1", "r2", "r3", "plain"]
PLAIN = {  # always valid, so that routes and splits have something to refer to
    "service": {"name": "plain", "url": "http://127.0.0.1:9"},
    "route": {"name": "plain", "service": "plain", "paths": ["/plain"]},
}
CONSUMERS = ["acme", "globex"]
GROUPS = ["free", "pro"]
CA = make_ca().cert.public_bytes(Encoding.PEM).decode()
BAD_PEM = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

header_names = pick(
    "x-env", "X-Tenant", "apikey", "accept", "x_a.b~c", "x" * 128, bad=("host", ":path", "a b")
)  # fmt: skip
header_values = mixed(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF), max_size=40))
paths = mixed(st.from_regex(r"/[a-zA-Z0-9/._~!$&'()*+,;=:@%-]{0,30}", fullmatch=True))
regexes = pick(
    "^/v[0-9]+/.*", "/api/(users|orders)/[0-9]+", "^/(.*)$", "(a+)+b", "/x" * 60, ".{90}",
    "(?i)/Case", "\\p{Greek}+", "/a\\d+", "^/(v1|v2)/(.*)$",
    bad=("[a-z", "(?<=x)", "a{2,1001}", "^(" + "|".join(f"/p{i}" for i in range(30)) + ")$"),
)  # fmt: skip
hosts = pick("example.com", "*.example.com", "API.Example.COM", "*.a.example.com", "a-b.c")
ip_or_dns = pick(
    "127.0.0.1", "10.0.0.5", "::1", "orders.internal", "A-1.example.", bad=("fe80::1%eth0", "a..b")
)  # fmt: skip
hostports = pick("api.example.com", "api.example.com:8443", "[::1]:80", "10.0.0.1", bad=("a:0",))
origins = pick(
    "*", "https://app.example.com", "http://[::1]:8080", bad=("null", "app.example.com")
)  # fmt: skip
methods = pick("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT")
cookie_names = pick("beta", "session_id", "c" * 30, bad=("c" * 60,))
cookie_values = pick("1", "on", "v" * 30, "a=b", bad=("v" * 80, "x;y"))
templates = pick(
    "/forecast/{key}", "/{key}", "/v1/{key}/data", "/a.b/{key}/c(d)",
    bad=("/a/{key}/{key}", "/a b/{key}", "/{key}/" + "/".join("t" * 60)),
)  # fmt: skip


def opt(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def small(strategy: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, max_size=max_size)


# --- entities ------------------------------------------------------------------

header_changes = opt(
    add=st.dictionaries(header_names, header_values, max_size=3),
    set=st.dictionaries(header_names, header_values, max_size=3),
    remove=small(header_names),
)
route_policies = opt(
    request_headers=header_changes,
    response_headers=header_changes,
    rewrite=st.one_of(
        st.fixed_dictionaries({"prefix": paths}),
        st.fixed_dictionaries({"regex": regexes, "substitution": pick("/\\1", "/v2/\\1", "/\\2")}),
    ),
    host_rewrite=hostports,
    timeout_ms=numbers(1, 1000, 3_600_000),
    retries=opt(
        attempts=numbers(1, 3, 10),
        on=small(st.sampled_from(["connect-failure", "5xx", "gateway-error", "reset"])),
        per_try_timeout_ms=numbers(1, 250),
    ),
    cors=opt(
        allow_origins=small(origins),
        allow_methods=small(methods),
        allow_headers=small(st.one_of(header_names, st.just("*"))),
        expose_headers=small(header_names),
        max_age_s=numbers(0, 600, 86400),
        allow_credentials=st.booleans(),
    ),
)
key_sources = st.one_of(
    st.fixed_dictionaries({"header": header_names}),
    st.fixed_dictionaries({"query": pick("apikey", "key", bad=("a b",))}),
    st.fixed_dictionaries({"path": templates}),
)
limit = st.fixed_dictionaries(
    {
        "requests": numbers(1, 10, 1000, 1_000_000_000),
        "per": st.sampled_from(["second", "minute", "hour", "day", "month"]),
    }
)
limits = opt(burst=small(limit, 2), quota=small(limit, 2))
auth = opt(
    required=st.booleans(),
    key_sources=st.lists(key_sources, min_size=1, max_size=3),
    allow_consumers=small(st.sampled_from(CONSUMERS), 2),
    allow_groups=small(st.sampled_from(GROUPS), 2),
    consumer_header=header_names,
)
route = st.fixed_dictionaries(
    {"name": st.sampled_from(ROUTES), "service": st.sampled_from(SERVICES)},
    optional={
        "hosts": small(hosts),
        "paths": small(
            st.one_of(
                paths,
                st.fixed_dictionaries({"exact": paths}),
                st.fixed_dictionaries({"regex": regexes}),
            )
        ),
        "methods": small(methods, 9),
        "headers": st.dictionaries(header_names, header_values, max_size=3),
        "strip_path": st.booleans(),
        "priority": numbers(0, 10, -1000),
        "groups": st.lists(st.sampled_from(["default", "edge"]), min_size=1, max_size=2),
        "auth": auth,
        "limits": limits,
        "policies": route_policies,
    },
)
service_policies = opt(
    protocol=st.sampled_from(["http1", "http2", "grpc"]),
    health_check=opt(
        path=paths,
        interval_ms=numbers(100, 5000),
        timeout_ms=numbers(10, 1000),
        unhealthy_threshold=numbers(1, 2),
        healthy_threshold=numbers(1, 100),
    ),
    outlier_detection=opt(
        consecutive_5xx=numbers(0, 1, 5),
        consecutive_gateway_failure=numbers(0, 1, 1000),
        split_local_origin_errors=st.booleans(),
        consecutive_local_origin_failure=numbers(0, 1, 1000),
        interval_ms=numbers(100, 10_000),
        base_ejection_time_ms=numbers(100, 30_000),
        max_ejection_percent=numbers(0, 10, 100),
    ),
    circuit_breakers=opt(
        max_connections=numbers(1, 1024, 2**32 - 1),
        max_pending_requests=numbers(1, 1024),
        max_requests=numbers(1, 1024),
        max_retries=numbers(0, 3),
        retry_budget_percent=st.floats(-1, 101, allow_nan=False),
    ),
    tls=opt(
        sni=ip_or_dns,
        ca_pem=st.sampled_from(
            [CA, CA + CA, "my CA\n" + CA.replace("\n", "\r\n"), BAD_PEM, CA + BAD_PEM, "x" + CA]
        ),
    ),
)
url = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}:{port}",
    rarely(st.sampled_from(["http", "https"]), st.just("ftp")),
    ip_or_dns.map(lambda h: f"[{h}]" if ":" in h else h),
    numbers(80, 8080, 65535),
)
endpoints = st.lists(
    st.fixed_dictionaries(
        {"address": ip_or_dns, "port": numbers(80, 65535)},
        optional={"weight": numbers(1, 128)},
    ),
    min_size=1,
    max_size=3,
)
service = st.builds(
    lambda base, target: base | target,
    st.fixed_dictionaries(
        {"name": st.sampled_from(SERVICES)},
        optional={"connect_timeout_ms": numbers(1, 1000, 60_000), "policies": service_policies},
    ),
    rarely(
        st.one_of(
            st.fixed_dictionaries({"url": rarely(url, mixed(st.just("http://127.0.0.1:9")))}),
            st.fixed_dictionaries({"endpoints": endpoints}),
        ),
        st.one_of(st.just({}), st.fixed_dictionaries({"url": url, "endpoints": endpoints})),
    ),
)
target = st.sampled_from(["plain", *SERVICES[:3]])
split = st.fixed_dictionaries(
    {
        "name": st.just("split"),
        "route": st.sampled_from(ROUTES),
        # "plain" always exists; the others only when their hostile spec was accepted.
        "targets": st.builds(
            lambda weight, others: [{"service": "plain", "weight": weight}, *others],
            numbers(1, 90, 100),
            st.lists(
                st.fixed_dictionaries(
                    {"service": st.sampled_from(SERVICES[:3]), "weight": numbers(10, 0, 1_000_000)}
                ),
                max_size=2,
                unique_by=lambda t: t["service"],
            ),
        ),
    },
    optional={
        "pins": small(
            st.one_of(
                st.fixed_dictionaries(
                    {"header": header_names, "value": header_values, "service": target},
                ),
                st.fixed_dictionaries(
                    {"cookie": cookie_names, "value": cookie_values, "service": target},
                ),
                st.fixed_dictionaries(
                    {"consumer": st.sampled_from(CONSUMERS), "service": target},
                ),
            ),
            2,
        ),
        "sticky": st.one_of(
            st.fixed_dictionaries({"header": header_names}),
            st.fixed_dictionaries({"cookie": cookie_names}),
            st.just({"consumer": True}),
        ),
    },
)
consumer = st.fixed_dictionaries(
    {"name": st.sampled_from(CONSUMERS)},
    optional={"groups": small(st.sampled_from(GROUPS), 2), "limits": limits},
)
declarations = st.fixed_dictionaries(
    {
        "consumer": st.lists(consumer, max_size=2, unique_by=lambda c: c["name"]),
        "service": st.lists(service, min_size=3, max_size=3, unique_by=lambda s: s["name"]).map(
            lambda services: [s for s in services if s["name"] != "plain"] + [PLAIN["service"]]
        ),
        "route": st.lists(route, max_size=3, unique_by=lambda r: r["name"]).map(
            lambda routes: [r for r in routes if r["name"] != "plain"] + [PLAIN["route"]]
        ),
        "keys": small(pick("k" * 16, "key-" + "a" * 20, "short", "ключ" * 8), 2),
    }
).flatmap(
    # The split is on one of the routes drawn, so that most splits have a route.
    lambda doc: st.builds(
        lambda one, route: doc | {"split": [one | {"route": route}]},
        split,
        st.sampled_from([r["name"] for r in doc["route"]]),
    )
)


# --- the property --------------------------------------------------------------


def admit(store: Store, doc: dict[str, list[dict[str, Any]]], stats: Counter[str]) -> Declaration:
    """Write each entity as `POST /<entities>` would; what is refused is left out."""
    # Start empty: delete what the last example wrote, dependents first (a consumer's
    # keys go with it).
    for kind in reversed(ENTITIES):
        for spec in store.list(kind):
            store.delete(kind, spec.name, "parity")  # type: ignore[attr-defined]
    for kind, ent in ENTITIES.items():
        for data in doc[kind]:
            try:
                store.create(kind, ent.spec.model_validate(data), "parity")
            except (ValidationError, TurnoutError) as exc:
                stats[f"{kind} refused"] += 1
                if os.environ.get("PARITY_DEBUG"):
                    why = (
                        exc.errors()[0]["loc"]
                        if isinstance(exc, ValidationError)
                        else str(exc)[:40]
                    )
                    stats[f"{kind} refused {why}"] += 1
                continue
            stats[f"{kind} accepted"] += 1
    consumers = sorted(c.name for c in store.list("consumer"))  # type: ignore[attr-defined]
    for key in doc["keys"]:
        if not consumers:
            break
        try:
            store.keys.of(consumers[0]).create(KeyCreate(key=key), "parity")
        except (ValidationError, TurnoutError):
            stats["key refused"] += 1
            continue
        stats["key accepted"] += 1
    return store.load()


def envoy_validate(text: str, directory: Path) -> subprocess.CompletedProcess[str]:
    config = directory / "static.yaml"
    config.write_text(text)
    command = [str(ENVOY), "--mode", "validate", "-c", str(config), "--log-level", "error"]
    command += ["--base-id", str(next(_BASE_IDS)), "--concurrency", "1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_envoy_accepts_every_declaration_the_admin_api_accepts(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'parity.db'}", secret_key="parity-" + "s" * 32)
    store.upgrade()
    stats: Counter[str] = Counter()

    @settings(settings.get_profile("parity"))
    @given(doc=declarations)
    def accepted_means_envoy_accepts(doc: dict[str, list[dict[str, Any]]]) -> None:
        decl = admit(store, doc, stats)
        groups = {"default"} | {g for r in decl.routes.values() for g in r.groups}
        for group in sorted(groups):
            opts = NodeGroup(address="127.0.0.1", port=10000, group=group)
            text = render(decl, opts)
            result = envoy_validate(text, tmp_path)
            stats["envoy runs"] += 1
            assert result.returncode == 0, f"Envoy refused:\n{result.stderr}\n{text}"

    try:
        accepted_means_envoy_accepts()
    finally:
        store.close()
        print(dict(stats))
    # The generator must reach deep: a property over nothing proves nothing.
    assert stats["envoy runs"] >= EXAMPLES
    for kind in ENTITIES:
        assert stats[f"{kind} accepted"] >= EXAMPLES // 5, (kind, dict(stats))
    assert sum(stats[f"{kind} refused"] for kind in ENTITIES) >= EXAMPLES, dict(stats)


# --- one field at a time ---------------------------------------------------------

RICH: dict[str, list[dict[str, Any]]] = {
    "consumer": [
        {
            "name": "acme",
            "groups": ["free"],
            "limits": {"burst": [{"requests": 5, "per": "second"}]},
        }
    ],
    "service": [
        {
            "name": "orders",
            "url": "https://orders.internal:8443",
            "connect_timeout_ms": 500,
            "policies": {
                "protocol": "http2",
                "health_check": {"path": "/healthz?full=1", "interval_ms": 1000},
                "outlier_detection": {
                    "consecutive_5xx": 3,
                    "max_ejection_percent": 50,
                    "split_local_origin_errors": True,
                    "consecutive_local_origin_failure": 2,
                },
                "circuit_breakers": {"max_connections": 100, "retry_budget_percent": 20.0},
                "tls": {"sni": "orders.internal", "ca_pem": CA},
            },
        },
        {"name": "orders-v2", "endpoints": [{"address": "10.0.0.7", "port": 8080, "weight": 3}]},
        PLAIN["service"],
    ],
    "route": [
        {
            "name": "r1",
            "service": "orders",
            "hosts": ["api.example.com", "*.example.org"],
            "paths": ["/api", {"exact": "/api/v1"}, {"regex": "^/v[0-9]+/.*"}],
            "methods": ["GET", "POST"],
            "headers": {"x-tenant": "acme"},
            "policies": {
                "request_headers": {"add": {"x-from": "turnout"}, "remove": ["x-debug"]},
                "response_headers": {"set": {"x-served-by": "turnout"}},
                "host_rewrite": "orders.internal:8443",
                "timeout_ms": 5000,
                "retries": {"attempts": 2, "per_try_timeout_ms": 1000},
                "cors": {
                    "allow_origins": ["https://app.example.com"],
                    "allow_methods": ["GET"],
                    "allow_headers": ["x-token"],
                    "expose_headers": ["x-trace"],
                    "max_age_s": 600,
                },
            },
        },
        {
            "name": "r2",
            "service": "orders-v2",
            "paths": ["/forecast"],
            "auth": {
                "key_sources": [{"path": "/forecast/{key}"}, {"header": "x-api-key"}],
                "allow_groups": ["free"],
                "consumer_header": "x-consumer",
            },
            "limits": {"burst": [{"requests": 10, "per": "minute"}]},
        },
        {
            "name": "r3",
            "service": "plain",
            "paths": ["/legacy"],
            "policies": {"rewrite": {"regex": "^/legacy/(.*)$", "substitution": "/\\1"}},
            "auth": {"key_sources": [{"query": "apikey"}]},
            "limits": {"quota": [{"requests": 1000, "per": "day"}]},
        },
        {
            "name": "r4",
            "service": "plain",
            "paths": ["/strip", "/s/x.y"],
            "strip_path": True,
            "priority": 5,
        },
    ],
    "split": [
        {
            "name": "s1",
            "route": "r1",
            "targets": [
                {"service": "orders", "weight": 90},
                {"service": "orders-v2", "weight": 10},
            ],
            "pins": [
                {"header": "x-beta", "value": "1", "service": "orders-v2"},
                {"cookie": "beta", "value": "on", "service": "orders-v2"},
            ],
            "sticky": {"cookie": "session"},
        },
        {
            "name": "s2",
            "route": "r2",
            "targets": [{"service": "orders-v2", "weight": 1}, {"service": "plain", "weight": 0}],
            "pins": [{"consumer": "acme", "service": "plain"}],
            "sticky": {"consumer": True},
        },
    ],
    "keys": ["acme-key-0123456789"],
}
"""Every feature at once; each example changes one value in it."""


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], bool]]:
    """(path, is_key) of every string and number in `node`, and of every mapping key."""
    out: list[tuple[tuple[Any, ...], bool]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(node, dict) and path and path[-1] in ("headers", "add", "set"):
            out.append(((*path, key), True))
        if isinstance(value, dict | list):
            out.extend(_leaves(value, (*path, key)))
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            out.append(((*path, key), False))
    return out


LEAVES = _leaves(RICH)
_strings = st.one_of(
    st.text(st.characters(), max_size=40),
    st.text(st.characters(max_codepoint=0x7F), max_size=40),
    st.sampled_from(HOSTILE),
)


def _mutated(doc: Any, path: tuple[Any, ...], is_key: bool, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, list):
        return [_mutated(v, rest, is_key, new) if i == head else v for i, v in enumerate(doc)]
    if is_key and not rest:
        return {(new if k == head else k): v for k, v in doc.items()}
    return {k: (_mutated(v, rest, is_key, new) if k == head else v) for k, v in doc.items()}


@st.composite
def one_change(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    path, is_key = draw(st.sampled_from(LEAVES))
    container: Any = RICH
    for step in path[:-1]:
        container = container[step]
    old = path[-1] if is_key else container[path[-1]]
    if isinstance(old, str):
        new: Any = draw(st.one_of(_strings, _splice(st.just(old))))
    else:
        new = draw(st.one_of(st.integers(-2, 2**40), st.sampled_from([0, 1, 2**32 - 1, 2**32])))
    return _mutated(RICH, path, is_key, new)  # type: ignore[no-any-return]


def test_envoy_accepts_every_accepted_change_of_one_value(tmp_path: Path) -> None:
    """The rich declaration with one value changed (to anything): accepted means Envoy
    accepts it. Each string and number of every entity gets a few hostile values."""
    store = Store(f"sqlite:///{tmp_path / 'parity.db'}", secret_key="parity-" + "s" * 32)
    store.upgrade()
    stats: Counter[str] = Counter()

    @settings(settings.get_profile("parity"))
    @given(doc=one_change())
    def accepted_means_envoy_accepts(doc: dict[str, list[dict[str, Any]]]) -> None:
        decl = admit(store, doc, stats)
        refused = sum(stats[f"{kind} refused"] for kind in ENTITIES)
        stats["examples with a refusal"] += refused > stats["refusals seen"]
        stats["refusals seen"] = refused
        groups = {"default"} | {g for r in decl.routes.values() for g in r.groups}
        for group in sorted(groups):
            text = render(decl, NodeGroup(address="127.0.0.1", port=10000, group=group))
            result = envoy_validate(text, tmp_path)
            stats["envoy runs"] += 1
            assert result.returncode == 0, f"Envoy refused:\n{result.stderr}\n{text}"

    # The rich declaration itself is accepted whole, by the API and by Envoy.
    whole: Counter[str] = Counter()
    decl = admit(store, RICH, whole)
    assert not any("refused" in k for k in whole) and len(decl.api_keys) == 1, whole
    text = render(decl, NodeGroup(address="127.0.0.1", port=10000))
    assert envoy_validate(text, tmp_path).returncode == 0
    try:
        accepted_means_envoy_accepts()
    finally:
        store.close()
        print(dict(stats))
    assert stats["envoy runs"] >= EXAMPLES
    # Both kinds of change must be common: refused ones, and accepted ones reaching Envoy.
    assert EXAMPLES // 4 <= stats["examples with a refusal"] <= EXAMPLES * 9 // 10, dict(stats)
