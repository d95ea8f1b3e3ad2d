"""The translation memo: the same bytes as translating from scratch, rebuilt only
where inputs changed."""

from dataclasses import replace

import pytest

from tests.xds.conftest import golden_cases
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import pack
from turnout.xds.translate import (
    TranslationError,
    build_clusters,
    build_endpoints,
    build_route_configuration,
)
from turnout.xds.translate.api_key_auth import build_api_key_auth_config
from turnout.xds.translate.pipeline import translate

CASES = [c for c in golden_cases() if c.expected_error is None]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_memo_bytes_equal_a_translation_from_scratch(case: object) -> None:
    decl, opts = case.load()  # type: ignore[attr-defined]
    memo = TranslationMemo()
    routes = memo.route_configuration(decl, opts)
    assert routes.any.value == pack(build_route_configuration(decl, opts)).any.value
    results = memo.services(decl)
    assert [r.cluster.any.value for r in results] == [
        pack(c).any.value for c in build_clusters(decl)
    ]
    assert [r.endpoints.any.value for r in results if r.endpoints] == [
        pack(e).any.value for e in build_endpoints(decl)
    ]
    keys = memo.api_key_auth_config(decl)
    assert keys.any.value == pack(build_api_key_auth_config(decl)).any.value


def test_a_key_change_rebuilds_the_credentials_not_the_routes() -> None:
    decl, opts = next(c for c in CASES if c.name == "auth-keys").load()
    memo = TranslationMemo()
    routes = memo.route_configuration(decl, opts)
    keys = memo.api_key_auth_config(decl)
    entries = dict(memo._entries)
    more = replace(
        decl,
        revision=decl.revision + 1,
        api_keys=(*decl.api_keys, ApiKey("zz", "alice", "another-key-0123456789")),
    )
    assert memo.route_configuration(more, opts).any.value == routes.any.value
    assert memo._entries == entries and all(memo._entries[k] is v for k, v in entries.items())
    new_keys = memo.api_key_auth_config(more)
    assert new_keys.any.value != keys.any.value
    assert new_keys.any.value == pack(build_api_key_auth_config(more)).any.value
    assert memo.api_key_auth_config(more) is new_keys  # unchanged keys: cached


def test_an_unchanged_spec_object_is_not_translated_again() -> None:
    decl, opts = next(c for c in CASES if c.name == "route-ordering").load()
    memo = TranslationMemo()
    memo.route_configuration(decl, opts)
    before = dict(memo._entries)
    name = sorted(decl.routes)[0]
    changed = RouteSpec.model_validate(decl.routes[name].model_dump() | {"priority": 7})
    decl2 = replace(decl, revision=decl.revision + 1, routes=decl.routes | {name: changed})
    assert memo.route_configuration(decl2, opts).any.value == (
        pack(build_route_configuration(decl2, opts)).any.value
    )
    rebuilt = {k for k, v in memo._entries.items() if before.get(k) is not v}
    assert rebuilt and {k[0] for k in rebuilt} == {name}


def test_a_reference_to_a_missing_service_is_refused() -> None:
    decl, opts = next(c for c in golden_cases() if c.expected_error).load()
    with pytest.raises(TranslationError, match="cluster 'ghost', which does not exist"):
        translate(decl, opts, TranslationMemo())


@pytest.mark.parametrize(
    "change",
    [{"service": "other"}, {"strip_path": True}, {"paths": ["/moved"]}, {"hosts": ["new.example"]}],
    ids=["backend", "rewrite", "paths", "hosts"],
)
def test_a_changed_route_gives_the_bytes_of_a_fresh_translation(
    change: dict[str, object],
) -> None:
    decl, opts = next(c for c in CASES if c.name == "virtual-hosts").load()
    memo = TranslationMemo()
    memo.route_configuration(decl, opts)
    name = sorted(decl.routes)[0]
    services = decl.services
    if "service" in change:
        other = next(iter(services.values())).model_copy(update={"name": "other"})
        services = services | {"other": other}
    changed = RouteSpec.model_validate(decl.routes[name].model_dump() | change)
    decl2 = replace(
        decl, revision=decl.revision + 1, services=services, routes=decl.routes | {name: changed}
    )
    assert memo.route_configuration(decl2, opts).any.value == (
        pack(build_route_configuration(decl2, opts)).any.value
    )
    smaller = replace(
        decl2, revision=decl2.revision + 1, routes=dict(list(decl2.routes.items())[1:])
    )
    assert memo.route_configuration(smaller, opts).any.value == (
        pack(build_route_configuration(smaller, opts)).any.value
    )


@pytest.mark.parametrize("hosts", [[], ["*.example.com"]], ids=["host-less", "known-wildcard"])
def test_adding_and_removing_a_route_keeps_the_layout(hosts: list[str]) -> None:
    """No host pattern appears or goes: the entries are placed in the layout, not
    re-sorted, and no other route is translated again."""
    decl, opts = next(c for c in CASES if c.name == "virtual-hosts").load()
    assert not hosts or any(h in r.hosts for r in decl.routes.values() for h in hosts)
    memo = TranslationMemo()
    memo.route_configuration(decl, opts)
    layout, before = memo._layouts[opts.group], dict(memo._entries)
    service = next(iter(decl.services))
    added = RouteSpec(name="zz-added", hosts=hosts, paths=["/added", "/b"], service=service)
    grown = replace(decl, revision=decl.revision + 1, routes=decl.routes | {added.name: added})
    assert memo.route_configuration(grown, opts).any.value == (
        pack(build_route_configuration(grown, opts)).any.value
    )
    assert memo._layouts[opts.group] is layout
    assert {k[0] for k, v in memo._entries.items() if before.get(k) is not v} == {added.name}
    gone = sorted(decl.routes)[0]
    shrunk = replace(
        grown,
        revision=grown.revision + 1,
        routes={n: r for n, r in grown.routes.items() if n != gone},
        splits={n: s for n, s in grown.splits.items() if s.route != gone},
    )
    assert memo.route_configuration(shrunk, opts).any.value == (
        pack(build_route_configuration(shrunk, opts)).any.value
    )
