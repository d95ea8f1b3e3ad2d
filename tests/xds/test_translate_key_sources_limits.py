"""Combined key sources and limits on one route: the entries' filter configs merge."""

from envoy.config.route.v3.route_components_pb2 import FilterConfig
from envoy.extensions.filters.http.header_mutation.v3.header_mutation_pb2 import (
    HeaderMutationPerRoute,
)

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.xds.translate.api_key_auth import HEADER_MUTATION_FILTER, PATH_KEY_HEADER
from turnout.xds.translate.ratelimit import LOCAL_RATELIMIT_FILTER, RATELIMIT_HEADERS
from turnout.xds.translate.route import build_virtual_hosts


def _mutations(route: object) -> HeaderMutationPerRoute:
    wrapper, per_route = FilterConfig(), HeaderMutationPerRoute()
    route.typed_per_filter_config[HEADER_MUTATION_FILTER].Unpack(wrapper)  # type: ignore[attr-defined]
    wrapper.config.Unpack(per_route)
    return per_route


def test_path_entry_keeps_its_path_key_mutation_beside_the_header_cleanup() -> None:
    route = RouteSpec.model_validate(
        {
            "name": "w",
            "paths": ["/w"],
            "service": "s",
            "auth": {"key_sources": [{"path": "/w/{key}"}, {"query": "apikey"}]},
            "limits": {
                "burst": [{"requests": 5, "per": "second"}],
                "quota": [{"requests": 9, "per": "day"}],
            },
        }
    )
    decl = Declaration(
        revision=1,
        services={"s": ServiceSpec(name="s", url="http://10.0.0.1:80")},
        routes={"w": route},
        consumers={"alice": ConsumerSpec(name="alice")},
    )
    (host,) = build_virtual_hosts(decl)
    query, path = host.routes
    assert [query.name, path.name] == ["w~key1", "w"]
    assert query.match.query_parameters[0].name == "apikey"
    assert not query.route.HasField("regex_rewrite") and path.route.HasField("regex_rewrite")
    for entry in (query, path):
        assert LOCAL_RATELIMIT_FILTER in entry.typed_per_filter_config
        kept = [m.append.header.key for m in _mutations(entry).mutations.response_mutations]
        assert kept == list(RATELIMIT_HEADERS)
    requested = _mutations(path).mutations.request_mutations
    assert [m.remove or m.append.header.key for m in requested] == [PATH_KEY_HEADER] * 2
    assert not _mutations(query).mutations.request_mutations
