"""The dashboard reads the counter of the descriptor Envoy really sends for a consumer quota."""

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.route import RouteSpec
from turnout.xds.translate.ratelimit import build_quota_rate_limits, consumer_quota_entries


def test_consumer_quota_entries_match_the_route_actions() -> None:
    acme = ConsumerSpec.model_validate(
        {"name": "acme", "limits": {"quota": [{"requests": 5, "per": "hour"}]}}
    )
    route = RouteSpec.model_validate(
        {"name": "api", "paths": ["/api"], "service": "blue", "auth": {}}
    )
    decl = Declaration(revision=1, routes={"api": route}, consumers={"acme": acme})
    (limit,) = build_quota_rate_limits(route, decl)
    consumer, quota = limit.actions
    sent = [
        (consumer.header_value_match.descriptor_key, consumer.header_value_match.descriptor_value),
        (quota.generic_key.descriptor_key, quota.generic_key.descriptor_value),
    ]
    assert sent == consumer_quota_entries("acme", acme.limits.quota[0])
