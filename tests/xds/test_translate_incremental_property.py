"""Property: over a long random sequence of writes, `translate` (incremental, what is
served) gives byte for byte what `build_resources` gives from scratch.

Each write makes the next declaration the way `Store.load_since` does: unchanged
specs are the very same objects, a written entity is a new object, and deleting a
service or route takes what refers to it along (the store refuses dangling
references, so translation never sees them).
"""

from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.models.consumer import ApiKey, ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import pack
from turnout.xds.translate import ListenerOptions, build_resources
from turnout.xds.translate.pipeline import translate

GROUPS = (ListenerOptions(), ListenerOptions(group="edge", port=10001))
HOSTS = ([], ["a.example.com"], ["*.example.com"], ["b.example.com", "a.example.com"])
PATHS: tuple[list[object], ...] = (
    [],
    ["/api"],
    ["/api/v1", {"exact": "/health"}],
    [{"regex": "^/v[0-9]+/.*"}],
    ["/"],
)
AUTHS: tuple[dict[str, object] | None, ...] = (
    None,
    {},
    {"allow_groups": ["paid"]},
    {"key_sources": [{"query": "apikey"}], "allow_consumers": ["c0"]},
)

OPERATIONS = (
    *("service", "route", "split", "consumer", "key"),
    *("del-service", "del-route", "del-split", "del-consumer", "del-key"),
)
Write = tuple[str, int, int, int]
"""(operation, entity index, variant, another index)."""

writes = st.tuples(
    st.sampled_from(OPERATIONS),
    st.integers(0, 5),
    st.integers(0, 19),
    st.integers(0, 5),
)


def _service(i: int, variant: int) -> ServiceSpec:
    if variant % 3 == 0:
        return ServiceSpec(name=f"s{i}", url=f"http://svc{i}.internal:80{variant % 10}")
    return ServiceSpec(
        name=f"s{i}",
        endpoints=[{"address": f"10.0.{i}.{k}", "port": 8080} for k in range(1 + variant % 2)],
    )


def _route(i: int, variant: int, service: str) -> RouteSpec:
    paths = PATHS[(variant + i) % len(PATHS)]
    return RouteSpec(
        name=f"r{i}",
        hosts=HOSTS[variant % len(HOSTS)],
        paths=paths,
        methods=["GET"] if variant % 4 == 1 else [],
        service=service,
        strip_path=variant % 5 == 2 and all(isinstance(p, str) for p in paths),
        priority=variant % 3,
        groups=["default", "edge"] if variant % 6 else ["edge"],
        auth=AUTHS[variant % len(AUTHS)],
    )


def _apply(decl: Declaration, write: Write) -> Declaration:
    op, i, variant, j = write
    services, routes = dict(decl.services), dict(decl.routes)
    splits, consumers, keys = dict(decl.splits), dict(decl.consumers), list(decl.api_keys)
    names = sorted(services)
    if op == "service":
        services[f"s{i}"] = _service(i, variant)
    elif op == "route" and names:
        routes[f"r{i}"] = _route(i, variant, names[j % len(names)])
    elif op == "split" and f"r{i}" in routes and names:
        other = names[(j + 1) % len(names)]
        targets = [{"service": routes[f"r{i}"].service, "weight": 100 - variant * 5}]
        if other != routes[f"r{i}"].service:
            targets.append({"service": other, "weight": variant * 5})
        splits[f"split-r{i}"] = SplitSpec(name=f"split-r{i}", route=f"r{i}", targets=targets)
    elif op == "consumer":
        groups = ["paid"] if variant % 2 else ["free"]
        consumers[f"c{i}"] = ConsumerSpec(name=f"c{i}", groups=groups)
    elif op == "key" and f"c{i}" in consumers:
        keys = [k for k in keys if k.id != f"k{i}-{j}"]
        keys.append(ApiKey(id=f"k{i}-{j}", consumer=f"c{i}", key=f"key-{i}-{j}-{variant:02d}-0123"))
    elif op == "del-service":
        gone = f"s{i}"
        services.pop(gone, None)
        routes = {n: r for n, r in routes.items() if r.service != gone}
        splits = {
            n: s
            for n, s in splits.items()
            if s.route in routes and all(t.service != gone for t in s.targets)
        }
    elif op == "del-route":
        routes.pop(f"r{i}", None)
        splits = {n: s for n, s in splits.items() if s.route in routes}
    elif op == "del-split":
        splits.pop(f"split-r{i}", None)
    elif op == "del-consumer":
        consumers.pop(f"c{i}", None)
        keys = [k for k in keys if k.consumer != f"c{i}"]
    elif op == "del-key":
        keys = [k for k in keys if not k.id.startswith(f"k{i}-")]
    else:
        return decl
    return Declaration(
        revision=decl.revision + 1,
        services=services,
        routes=routes,
        splits=splits,
        consumers=consumers,
        api_keys=tuple(sorted(keys, key=lambda k: k.id)),
    )


def _served_bytes(
    decl: Declaration, group: ListenerOptions, memo: TranslationMemo
) -> dict[str, list[tuple[str, bytes]]]:
    t = translate(decl, group, memo)
    return {url: [(p.name, p.any.value) for p in packed] for url, packed in t.packed.items()}


def _scratch_bytes(decl: Declaration, group: ListenerOptions) -> dict[str, list[tuple[str, bytes]]]:
    resources = build_resources(decl, group)
    return {url: [(p.name, p.any.value) for p in map(pack, ms)] for url, ms in resources.items()}


@settings(max_examples=25, deadline=None)
@given(st.lists(writes, min_size=20, max_size=80))
def test_incremental_translation_equals_a_translation_from_scratch(
    sequence: list[Write],
) -> None:
    memo = TranslationMemo()
    decl = Declaration(revision=1)

    def check(d: Declaration) -> None:
        for group in GROUPS:
            assert _served_bytes(d, group, memo) == _scratch_bytes(d, group), group
        memo.forget_routes_except(d)

    check(decl)
    for write in sequence:
        decl = _apply(decl, write)
        check(decl)
