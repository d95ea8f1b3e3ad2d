"""Example bodies, one set per schema: the OpenAPI document, `/docs` and the README
draw on the same ones.

They form one small declaration that is valid when posted in order: consumer
`acme`, services `orders` and `orders-v2`, route `orders` (and `orders-partner`
with API keys), split `orders-canary` with a staged plan. A test posts every
example the OpenAPI document shows to a fresh app and expects each accepted
(tests/admin/test_openapi_examples.py), so none can go stale.

Plain data only: the spec modules import this one (`json_schema_extra`), so it
imports none of them.
"""

from dataclasses import dataclass
from typing import Any

FAR_FUTURE = "2099-12-31T23:59:59Z"
"""An expiry that stays in the future for as long as the examples are read."""


@dataclass(frozen=True)
class Example:
    summary: str
    value: dict[str, Any]


Examples = dict[str, Example]
"""Named examples of one schema, first the one the path parameter examples name."""


def schema_examples(examples: Examples) -> dict[str, Any]:
    """For a model's `json_schema_extra`: the values as JSON Schema `examples`."""
    return {"examples": [e.value for e in examples.values()]}


def openapi_examples(examples: Examples) -> dict[str, dict[str, Any]]:
    """For `Body(openapi_examples=...)`: named examples with a summary each."""
    return {key: {"summary": e.summary, "value": e.value} for key, e in examples.items()}


def name_example(examples: Examples) -> dict[str, dict[str, Any]]:
    """For a `{name}` path parameter: the name of the first example."""
    first = next(iter(examples.values()))
    return {"first": {"summary": first.summary, "value": first.value["name"]}}


CONSUMER: Examples = {
    "acme": Example(
        "A consumer on the free plan, 1000 requests a day",
        {
            "name": "acme",
            "groups": ["free"],
            "limits": {"quota": [{"requests": 1000, "per": "day"}]},
            "tags": ["partner"],
        },
    ),
}

SERVICE: Examples = {
    "url": Example(
        "A service at one url",
        {"name": "orders", "url": "http://orders.internal:8080", "tags": ["team-shop"]},
    ),
    "endpoints": Example(
        "A service on weighted endpoints",
        {
            "name": "orders-v2",
            "endpoints": [
                {"address": "10.0.0.5", "port": 8080, "weight": 2},
                {"address": "10.0.0.6", "port": 8080},
            ],
            "connect_timeout_ms": 500,
            "tags": ["team-shop"],
        },
    ),
}

ROUTE: Examples = {
    "open": Example(
        "GET and POST under /orders on one host go to service orders",
        {
            "name": "orders",
            "service": "orders",
            "hosts": ["shop.example.com"],
            "paths": ["/orders"],
            "methods": ["GET", "POST"],
            "tags": ["team-shop"],
        },
    ),
    "api-key": Example(
        "A route for partners: an API key of group free, 10 requests a second",
        {
            "name": "orders-partner",
            "service": "orders",
            "paths": ["/partner/orders"],
            "strip_path": True,
            "auth": {"key_sources": [{"header": "x-api-key"}], "allow_groups": ["free"]},
            "limits": {"burst": [{"requests": 10, "per": "second"}]},
            "tags": ["team-shop"],
        },
    ),
}

SPLIT: Examples = {
    "canary": Example(
        "90/10 between orders and orders-v2, a staged plan to 100 %, testers pinned to v2",
        {
            "name": "orders-canary",
            "route": "orders",
            "targets": [
                {"service": "orders", "weight": 90},
                {"service": "orders-v2", "weight": 10},
            ],
            "pins": [{"header": "x-canary", "value": "1", "service": "orders-v2"}],
            "plan": {
                "baseline": "orders",
                "target": "orders-v2",
                "steps": [1, 10, 50, 100],
                "hold_seconds": 300,
                "criteria": {"max_error_rate": 0.01, "min_requests": 100},
            },
        },
    ),
}

ENTITY: dict[str, Examples] = {
    "consumer": CONSUMER,
    "service": SERVICE,
    "route": ROUTE,
    "split": SPLIT,
}
"""Create (and replace) examples by entity kind."""

PATCH: dict[str, Examples] = {
    "consumer": {
        "groups": Example("Move the consumer to other groups", {"groups": ["free", "beta"]})
    },
    "service": {
        "timeout": Example(
            "Change the connect timeout, drop the tags", {"connect_timeout_ms": 250, "tags": None}
        )
    },
    "route": {"priority": Example("Match this route first", {"priority": 10})},
    "split": {
        "weights": Example(
            "Move to 50/50",
            {
                "targets": [
                    {"service": "orders", "weight": 50},
                    {"service": "orders-v2", "weight": 50},
                ]
            },
        )
    },
}
"""Merge-patch examples by entity kind, for the first create example."""

KEY: Examples = {
    "generate": Example("Generate a strong key (the answer shows it once)", {}),
    "import": Example(
        "Import a key from another gateway, expiring",
        {"key": "acme-legacy-key-0123456789", "expires_at": FAR_FUTURE},
    ),
}

PLAN_ACTION: Examples = {
    "reason": Example(
        "Say why (recorded in the audit event)", {"reason": "error rate 0.2 % after 10 minutes"}
    ),
}

RESTORE: Examples = {
    "reason": Example("Restore, saying why", {"reason": "orders-v2 broke checkout"}),
}

TOKEN: Examples = {
    "ci": Example(
        "An operator token for a CI job, valid 90 days",
        {"name": "ci-deploy", "role": "operator", "expires_in_seconds": 90 * 86400},
    ),
    "viewer": Example("A viewer token that never expires", {"name": "dashboard", "role": "viewer"}),
}

FREEZE: Examples = {
    "services": Example(
        "Freeze two services (and their routes and splits) until lifted",
        {"reason": "Black Friday", "scope": {"services": ["orders", "orders-v2"]}},
    ),
    "window": Example(
        "Freeze everything tagged team-shop over a window",
        {
            "reason": "quarterly close",
            "scope": {"tags": ["team-shop"]},
            "starts_at": "2099-12-30T00:00:00Z",
            "ends_at": FAR_FUTURE,
        },
    ),
}

CONFIG: Examples = {
    "whole": Example(
        "The whole declaration: what is not listed is deleted",
        {
            "_format_version": "1",
            "consumers": [CONSUMER["acme"].value],
            "services": [e.value for e in SERVICE.values()],
            "routes": [e.value for e in ROUTE.values()],
            "splits": [e.value for e in SPLIT.values()],
        },
    ),
}
