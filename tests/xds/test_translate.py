"""Unit tests of `turnout.xds.translate` beyond the golden files: determinism, the
route-order rule as a property, path stripping, host coverage and
`check_consistent`."""

import itertools
import random

import pytest
import re2
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.message import Message

from turnout.models.declaration import Declaration
from turnout.models.errors import TurnoutError
from turnout.models.regex import re2_escape
from turnout.models.route import PathKind, RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    NodeGroup,
    TranslationError,
    build_clusters,
    build_endpoints,
    build_listener,
    build_resources,
    build_route_configuration,
    check_consistent,
    route_configuration_name,
)
from turnout.xds.translate.route import host_covers, sort_route_entries


def service(name: str, **kw: object) -> ServiceSpec:
    if "endpoints" not in kw:
        kw.setdefault("url", "http://10.0.0.1:8080")
    return ServiceSpec.model_validate({"name": name, **kw})


def route(name: str, **kw: object) -> RouteSpec:
    kw.setdefault("service", "svc")
    return RouteSpec.model_validate({"name": name, **kw})


def declaration(
    services: list[ServiceSpec], routes: list[RouteSpec], splits: list[SplitSpec] = ()
) -> Declaration:
    return Declaration(
        revision=1,
        services={s.name: s for s in services},
        routes={r.name: r for r in routes},
        splits={s.name: s for s in splits},
    )


def serialized(resources: dict[str, list[Message]]) -> dict[str, list[bytes]]:
    return {t: [m.SerializeToString(deterministic=True) for m in ms] for t, ms in resources.items()}


def sample() -> Declaration:
    return declaration(
        [
            service(
                "svc",
                endpoints=[
                    {"address": "10.0.0.2", "port": 80, "weight": 2},
                    {"address": "10.0.0.1", "port": 80},
                ],
            ),
            service("dns", url="https://api.example.com"),
            service("canary", url="http://10.0.0.9"),
        ],
        [
            route("a", paths=["/a", {"exact": "/a/b"}], methods=["GET", "POST"]),
            route("b", hosts=["*.example.com"], paths=[{"regex": "^/b/.*"}], service="dns"),
            route("c", headers={"x-v": "2"}, strip_path=True, paths=["/c/"]),
        ],
        [
            SplitSpec.model_validate(
                {
                    "name": "s",
                    "route": "a",
                    "targets": [
                        {"service": "svc", "weight": 95},
                        {"service": "canary", "weight": 5},
                    ],
                }
            )
        ],
    )


# --- public API --------------------------------------------------------------------


def test_type_urls_name_the_messages() -> None:
    for type_url, message in [
        (CLUSTER_TYPE, Cluster),
        (ENDPOINT_TYPE, ClusterLoadAssignment),
        (LISTENER_TYPE, Listener),
        (ROUTE_TYPE, RouteConfiguration),
    ]:
        assert type_url == "type.googleapis.com/" + message.DESCRIPTOR.full_name


def test_translation_error_is_a_turnout_error() -> None:
    assert issubclass(TranslationError, TurnoutError)


def test_names_follow_the_options() -> None:
    opts = NodeGroup(address="127.0.0.1", port=18000, group="blue")
    assert route_configuration_name(opts) == "turnout_routes_blue"
    assert build_listener(opts).name == "turnout_http_18000"
    assert build_route_configuration(sample(), opts).name == "turnout_routes_blue"


def test_build_resources_sorts_each_type_by_name() -> None:
    resources = build_resources(sample(), NodeGroup())
    assert [c.name for c in resources[CLUSTER_TYPE]] == ["canary", "dns", "svc"]
    assert [e.cluster_name for e in resources[ENDPOINT_TYPE]] == ["canary", "svc"]
    assert resources[CLUSTER_TYPE] == build_clusters(sample())
    assert resources[ENDPOINT_TYPE] == build_endpoints(sample())
    check_consistent(resources)


# --- determinism -------------------------------------------------------------------


def test_equal_input_gives_identical_bytes() -> None:
    opts = NodeGroup()
    assert serialized(build_resources(sample(), opts)) == serialized(
        build_resources(sample(), opts)
    )


def test_declaration_order_does_not_matter() -> None:
    decl = sample()
    rng = random.Random(7)
    for _ in range(5):
        services = list(decl.services.values())
        routes = list(decl.routes.values())
        rng.shuffle(services)
        rng.shuffle(routes)
        shuffled_services = []
        for s in services:
            if s.endpoints:
                eps = list(s.endpoints)
                rng.shuffle(eps)
                s = s.model_copy(update={"endpoints": eps})
            shuffled_services.append(s)
        other = declaration(shuffled_services, routes, list(decl.splits.values()))
        assert serialized(build_resources(other, NodeGroup())) == serialized(
            build_resources(decl, NodeGroup())
        )


# --- route order -------------------------------------------------------------------

_PATHS = [
    "/",
    "/api",
    "/api/v1",
    {"exact": "/api"},
    {"exact": "/api/v1/x"},
    {"regex": "^/api/.*"},
    {"regex": "/a.*"},
]
_KIND_RANK = {PathKind.EXACT: 0, PathKind.REGEX: 1, PathKind.PREFIX: 2}


def _many_routes() -> list[RouteSpec]:
    routes = []
    options = itertools.product(
        _PATHS, [0, 5, -3], [[], ["GET"]], [{}, {"x-a": "1"}], [[], ["h.example.com"]]
    )
    for i, (path, priority, methods, headers, hosts) in enumerate(options):
        routes.append(
            route(
                f"r{i:03d}",
                paths=[path],
                priority=priority,
                methods=methods,
                headers=headers,
                hosts=hosts,
            )
        )
    return routes


def test_route_order_is_most_specific_first() -> None:
    entries = sort_route_entries(_many_routes())
    for before, after in itertools.pairwise(entries):
        rb, ra = before.route, after.route
        if rb.priority != ra.priority:
            assert rb.priority > ra.priority
            continue
        kb, ka = _KIND_RANK[before.path.kind], _KIND_RANK[after.path.kind]
        if kb != ka:
            assert kb < ka
            continue
        if len(before.path.value) != len(after.path.value):
            assert len(before.path.value) > len(after.path.value)
            continue
        cb = len(rb.headers) + bool(rb.methods) + bool(rb.hosts)
        ca = len(ra.headers) + bool(ra.methods) + bool(ra.hosts)
        if cb != ca:
            assert cb > ca
            continue
        assert (rb.name, before.path.value) < (ra.name, after.path.value)


def test_route_order_does_not_depend_on_input_order() -> None:
    routes = _many_routes()
    expected = [e.name for e in sort_route_entries(routes)]
    random.Random(1).shuffle(routes)
    assert [e.name for e in sort_route_entries(routes)] == expected


def test_entry_names() -> None:
    entries = sort_route_entries(
        [route("one", paths=["/x"]), route("none"), route("two", paths=["/b", "/a"])]
    )
    assert sorted(e.name for e in entries) == ["none", "one", "two#0", "two#1"]


# --- matching and actions ----------------------------------------------------------


def _only_vhost_routes(decl: Declaration) -> list:
    (vhost,) = build_route_configuration(decl, NodeGroup()).virtual_hosts
    return list(vhost.routes)


@pytest.mark.parametrize(
    ("prefix", "path", "upstream"),
    [
        ("/api", "/api/users", "/users"),
        ("/api", "/api", "/"),
        ("/api", "/api/", "/"),
        ("/api", "/api/users/7", "/users/7"),
        ("/api/", "/api/users", "/users"),
        ("/api/", "/api/", "/"),
        ("/a.b+(c)", "/a.b+(c)/d", "/d"),
    ],
)
def test_strip_path_rewrite(prefix: str, path: str, upstream: str) -> None:
    """What Envoy's `regex_rewrite` (RE2 GlobalReplace on the path) will produce."""
    (entry,) = _only_vhost_routes(
        declaration([service("svc")], [route("r", paths=[prefix], strip_path=True)])
    )
    assert path.startswith(entry.match.prefix)
    rewrite = entry.route.regex_rewrite
    assert re2.sub(rewrite.pattern.regex, rewrite.substitution, path) == upstream


def test_strip_path_on_root_prefix_rewrites_nothing() -> None:
    (entry,) = _only_vhost_routes(declaration([service("svc")], [route("r", strip_path=True)]))
    assert not entry.route.HasField("regex_rewrite")


def test_re2_escape_is_literal_under_re2() -> None:
    text = "/a.b*c+d?e(f)g[h]i{j}k|l^m$n\\o-p~q&r#s"
    assert re2.fullmatch(re2_escape(text), text)


def test_methods_match() -> None:
    entries = _only_vhost_routes(
        declaration(
            [service("svc")],
            [
                route("one", paths=["/one"], methods=["DELETE"]),
                route("many", paths=["/many"], methods=["POST", "GET"]),
            ],
        )
    )
    one, many = sorted(entries, key=lambda e: e.name != "one")
    assert (one.name, one.match.headers[0].string_match.exact) == ("one", "DELETE")
    regex = many.match.headers[0].string_match.safe_regex.regex
    assert regex == "^(GET|POST)$"
    assert re2.fullmatch(regex, "GET") and not re2.fullmatch(regex, "PUT")


def test_zero_weight_targets_are_omitted_but_keep_their_cluster() -> None:
    split = SplitSpec.model_validate(
        {
            "name": "s",
            "route": "r",
            "targets": [{"service": "new", "weight": 1}, {"service": "old", "weight": 0}],
        }
    )
    decl = declaration([service("old"), service("new")], [route("r", service="old")], [split])
    (entry,) = _only_vhost_routes(decl)
    assert [(c.name, c.weight.value) for c in entry.route.weighted_clusters.clusters] == [
        ("new", 1)
    ]
    assert [c.name for c in build_clusters(decl)] == ["new", "old"]


@pytest.mark.parametrize(
    ("host", "pattern", "covers"),
    [
        ("a.x.com", "a.x.com", True),
        ("*.x.com", "a.x.com", True),
        ("*.x.com", "*.a.x.com", True),
        ("*.x.com", "*.x.com", True),
        ("*.x.com", "x.com", False),
        ("*.x.com", "ax.com", False),
        ("*.a.x.com", "a.x.com", False),
        ("a.x.com", "*.x.com", False),
    ],
)
def test_host_covers(host: str, pattern: str, covers: bool) -> None:
    assert host_covers(host, pattern) is covers


def test_catch_all_virtual_host_always_exists() -> None:
    config = build_route_configuration(
        declaration([service("svc")], [route("r", hosts=["a.com"])]), NodeGroup()
    )
    assert [(v.name, list(v.domains), len(v.routes)) for v in config.virtual_hosts] == [
        ("host:a.com", ["a.com"], 1),
        ("any", ["*"], 0),
    ]


# --- check_consistent ------------------------------------------------------------


def _good() -> dict[str, list[Message]]:
    return build_resources(sample(), NodeGroup())


def test_check_consistent_accepts_a_translation() -> None:
    check_consistent(_good())


def _without(resources: dict[str, list[Message]], type_url: str, name: str) -> None:
    resources[type_url] = [
        m
        for m in resources[type_url]
        if getattr(m, "name", None) != name and getattr(m, "cluster_name", None) != name
    ]


def test_eds_cluster_without_endpoints() -> None:
    resources = _good()
    _without(resources, ENDPOINT_TYPE, "svc")
    with pytest.raises(TranslationError, match="EDS cluster 'svc' has no ClusterLoadAssignment"):
        check_consistent(resources)


def test_endpoints_without_eds_cluster() -> None:
    resources = _good()
    resources[ENDPOINT_TYPE].append(ClusterLoadAssignment(cluster_name="dns"))
    with pytest.raises(TranslationError, match="'dns' belongs to no EDS cluster"):
        check_consistent(resources)


def test_listener_without_its_route_configuration() -> None:
    resources = _good()
    resources[ROUTE_TYPE] = []
    with pytest.raises(TranslationError, match="'turnout_routes_default', which does not"):
        check_consistent(resources)


@pytest.mark.parametrize("missing", ["svc", "canary", "dns"])
def test_route_to_missing_cluster(missing: str) -> None:
    """`svc` and `canary` are weighted clusters of route `a`, `dns` a plain cluster."""
    resources = _good()
    _without(resources, CLUSTER_TYPE, missing)
    _without(resources, ENDPOINT_TYPE, missing)
    with pytest.raises(TranslationError, match=f"cluster '{missing}', which does not exist"):
        check_consistent(resources)


def test_duplicate_names() -> None:
    resources = _good()
    resources[CLUSTER_TYPE].append(resources[CLUSTER_TYPE][0])
    with pytest.raises(TranslationError, match=r"duplicate envoy\.config\.cluster\.v3\.Cluster"):
        check_consistent(resources)


def test_message_under_the_wrong_type_url() -> None:
    resources = _good()
    resources[ROUTE_TYPE].append(Cluster(name="x"))
    with pytest.raises(TranslationError, match="is listed under"):
        check_consistent(resources)


def test_unknown_type_url() -> None:
    with pytest.raises(TranslationError, match="unknown resource type"):
        check_consistent({"type.googleapis.com/foo.Bar": []})
