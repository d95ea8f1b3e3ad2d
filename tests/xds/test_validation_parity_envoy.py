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
examples is TURNOUT_PARITY_EXAMPLES (default 150, a few minutes at most).
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
from turnout.models.consumer import KeyCreate
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import TurnoutError
from turnout.models.store import Store
from turnout.xds.translate import ListenerOptions

ENVOY = Path(sys.executable).parent / "envoy"
pytestmark = pytest.mark.skipif(not ENVOY.exists(), reason="no envoy beside the interpreter")
EXAMPLES = int(os.environ.get("TURNOUT_PARITY_EXAMPLES", "150"))
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
        consecutive_5xx=numbers(1, 5),
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
    store.apply({kind: {} for kind in ENTITIES}, "parity")
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
            store.keys.create(consumers[0], KeyCreate(key=key), "parity")
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
            opts = ListenerOptions(address="127.0.0.1", port=10000, group=group)
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
