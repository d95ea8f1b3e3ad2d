"""Property: over a long random sequence of writes, `translate` (incremental, what is
served) gives byte for byte what `build_resources` gives from scratch.

Each write makes the next declaration the way `Store.load_since` does: new dicts
holding the very same objects for unchanged specs, a new object for a written
entity, and deleting a service or route takes what refers to it along. Writes
also rename routes and services (a delete and a create in one revision), move a
route to other hosts (host patterns, and their virtual hosts, appear and go), and
— what the store refuses, but the reference check must catch on the served path
as from scratch — drop a service that routes still use: the served translation
must raise exactly when `check_consistent` does, and recover with the service.
"""

from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds import memo as memo_module
from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import pack
from turnout.xds.translate import (
    NodeGroup,
    TranslationError,
    build_resources,
    check_consistent,
)
from turnout.xds.translate.pipeline import translate

GROUPS = (NodeGroup(), NodeGroup(group="edge", port=10001))
HOSTS = (
    [],
    ["a.example.com"],
    ["*.example.com"],
    ["b.example.com", "a.example.com"],
    ["x.a.example.com"],
    ["*.a.example.com", "c.example.com"],
)
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
    *("rename-route", "rename-service", "rehost-route", "drop-service", "many-routes"),
)
Write = tuple[str, int, int, int]
"""(operation, entity index, variant, another index)."""

writes = st.tuples(
    st.sampled_from(OPERATIONS),
    st.integers(0, 7),
    st.integers(0, 23),
    st.integers(0, 7),
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
        weight = variant % 20 * 5
        targets = [{"service": routes[f"r{i}"].service, "weight": 100 - weight}]
        if other != routes[f"r{i}"].service:
            targets.append({"service": other, "weight": weight})
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
    elif op == "rename-route" and f"r{i}" in routes and f"r{j}" not in routes:
        old = routes.pop(f"r{i}")
        routes[f"r{j}"] = RouteSpec.model_validate(old.model_dump() | {"name": f"r{j}"})
        if (split := splits.pop(f"split-r{i}", None)) is not None:
            splits[f"split-r{j}"] = SplitSpec(
                name=f"split-r{j}", route=f"r{j}", targets=split.model_dump()["targets"]
            )
    elif (
        op == "rename-service"
        and f"s{i}" in services
        and f"s{j}" not in services
        # A dropped service can still be a split's target: renaming onto it would name
        # that service twice in one split, which the spec refuses.
        and not any(t.service == f"s{j}" for sp in splits.values() for t in sp.targets)
    ):
        old_name, new_name = f"s{i}", f"s{j}"
        services[new_name] = ServiceSpec.model_validate(
            services.pop(old_name).model_dump() | {"name": new_name}
        )
        for n, r in list(routes.items()):
            if r.service == old_name:
                routes[n] = RouteSpec.model_validate(r.model_dump() | {"service": new_name})
        for n, sp in list(splits.items()):
            if any(t.service == old_name for t in sp.targets):
                targets = [
                    t | {"service": new_name if t["service"] == old_name else t["service"]}
                    for t in sp.model_dump()["targets"]
                ]
                splits[n] = SplitSpec(name=n, route=sp.route, targets=targets)
    elif op == "rehost-route" and f"r{i}" in routes:
        hosts = HOSTS[variant % len(HOSTS)]
        routes[f"r{i}"] = RouteSpec.model_validate(routes[f"r{i}"].model_dump() | {"hosts": hosts})
    elif op == "drop-service":
        services.pop(f"s{i}", None)  # routes and splits still name it: inconsistent
    elif op == "many-routes" and names:
        for k in range(8):  # several routes in one revision (a bulk import)
            routes[f"r{k}"] = _route(k, variant + k, names[(j + k) % len(names)])
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
    decl: Declaration, group: NodeGroup, memo: TranslationMemo
) -> dict[str, list[tuple[str, bytes]]] | str:
    try:
        t = translate(decl, group, memo)
    except TranslationError:
        return "inconsistent"
    return {url: [(p.name, p.any.value) for p in packed] for url, packed in t.packed.items()}


def _scratch_bytes(decl: Declaration, group: NodeGroup) -> dict[str, list[tuple[str, bytes]]] | str:
    resources = build_resources(decl, group)
    try:
        check_consistent(resources)
    except TranslationError:
        return "inconsistent"
    return {url: [(p.name, p.any.value) for p in map(pack, ms)] for url, ms in resources.items()}


def _run(sequence: list[Write]) -> None:
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


@settings(max_examples=40, deadline=None)
@given(st.lists(writes, min_size=20, max_size=80))
def test_incremental_translation_equals_a_translation_from_scratch(
    sequence: list[Write],
) -> None:
    _run(sequence)


@settings(max_examples=15, deadline=None)
@given(st.lists(writes, min_size=20, max_size=60))
def test_the_same_when_changes_are_too_many_to_place(sequence: list[Write]) -> None:
    """With the bounds at 1, most writes take the fallbacks: a fresh layout, the
    service order sorted again, the whole reference check."""
    with (
        patch.object(memo_module, "_MAX_TOUCHED", 1),
        patch.object(memo_module, "_MAX_SERVICES_PATCHED", 1),
        patch.object(memo_module, "_MAX_PENDING", 1),
    ):
        _run(sequence)


def test_a_broken_reference_stays_refused_until_it_is_mended() -> None:
    """The check after a failed one looks at everything again, not only at the
    latest change; and a service gone under an unchanged route is caught."""
    group = GROUPS[0]
    memo = TranslationMemo()
    s0, s1 = _service(0, 1), _service(1, 1)
    ok = Declaration(
        revision=1,
        services={"s0": s0, "s1": s1},
        routes={"r0": _route(0, 1, "s0"), "r1": _route(1, 1, "s1")},
    )
    translate(ok, group, memo)
    broken = Declaration(revision=2, services={"s1": s1}, routes=dict(ok.routes))
    with pytest.raises(TranslationError, match="route 'r0' sends traffic to cluster 's0'"):
        translate(broken, group, memo)
    unrelated = Declaration(
        revision=3, services={"s1": s1}, routes=ok.routes | {"r1": _route(1, 2, "s1")}
    )
    with pytest.raises(TranslationError, match="cluster 's0', which does not exist"):
        translate(unrelated, group, memo)
    mended = Declaration(revision=4, services={"s0": s0, "s1": s1}, routes=dict(unrelated.routes))
    assert _served_bytes(mended, group, memo) == _scratch_bytes(mended, group)
