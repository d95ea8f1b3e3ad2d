"""Request policies of a route and upstream policies of a service.

Route (`RouteSpec.policies`): header changes in both directions, path rewrite
(regex or prefix), host rewrite, timeout, retries, CORS. Service
(`ServiceSpec.policies`): active HTTP health checks, outlier detection, circuit
breakers (with the retry budget), upstream TLS verification (CA, SNI) and the
upstream protocol (HTTP/1.1, HTTP/2, gRPC). Translated in
`turnout/xds/translate/policies.py`.
"""

import ipaddress
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from turnout.models.types import header_name


class HeaderChanges(BaseModel):
    """`add` appends a value, `set` replaces it, `remove` drops the header.

    `replace` and `add_if_absent` are Kong's request-transformer `replace` and `add`:
    the first changes only a header the client sent, the second only adds a header
    the client did not send. Envoy applies `remove` first, then `replace`,
    `add_if_absent`, `add` and `set` in that order (Kong: remove, replace, add, append).
    """

    model_config = ConfigDict(extra="forbid")

    add: Annotated[dict[str, str], Field(max_length=32)] = {}
    set: Annotated[dict[str, str], Field(max_length=32)] = {}
    remove: Annotated[list[str], Field(max_length=32)] = []
    replace: Annotated[
        dict[str, str],
        Field(max_length=32, description="Overwrite these headers only when present."),
    ] = {}
    add_if_absent: Annotated[
        dict[str, str],
        Field(max_length=32, description="Add these headers only when absent."),
    ] = {}

    @field_validator("add", "set", "replace", "add_if_absent")
    @classmethod
    def _names(cls, headers: dict[str, str]) -> dict[str, str]:
        out = {header_name(k): v for k, v in headers.items()}
        for value in out.values():
            if "%" in value:
                raise ValueError("header values must not contain '%' (Envoy formatters)")
        return out

    @field_validator("remove")
    @classmethod
    def _removed(cls, names: list[str]) -> list[str]:
        return [header_name(n) for n in names]


class PathRewrite(BaseModel):
    """Either `prefix` (replaces the matched prefix) or `regex` + `substitution`."""

    model_config = ConfigDict(extra="forbid")

    prefix: Annotated[str | None, Field(description="Replacement of the matched prefix.")] = None
    regex: Annotated[str | None, Field(description="RE2 pattern over the path.")] = None
    substitution: Annotated[
        str | None, Field(description="Replacement; \\1 ... refer to groups.")
    ] = None

    @model_validator(mode="after")
    def _one(self) -> "PathRewrite":
        if (self.prefix is None) == (self.regex is None):
            raise ValueError("give either `prefix` or `regex` (with `substitution`)")
        if self.regex is not None:
            from turnout.models.route import check_regex  # route.py imports this module

            check_regex(self.regex)
            if self.substitution is None:
                raise ValueError("`regex` needs `substitution`")
        if self.prefix is not None and not self.prefix.startswith("/"):
            raise ValueError("`prefix` must start with '/'")
        return self


class RetryOn(StrEnum):
    CONNECT_FAILURE = "connect-failure"
    SERVER_ERROR = "5xx"
    GATEWAY_ERROR = "gateway-error"
    RESET = "reset"
    RESET_BEFORE_REQUEST = "reset-before-request"
    RETRIABLE_4XX = "retriable-4xx"


class Retries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: Annotated[int, Field(ge=1, le=10, description="Retries after the first try.")]
    on: Annotated[list[RetryOn], Field(min_length=1)] = [
        RetryOn.CONNECT_FAILURE,
        RetryOn.SERVER_ERROR,
    ]
    per_try_timeout_ms: Annotated[int | None, Field(ge=1, le=600_000)] = None


class Cors(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_origins: Annotated[list[str], Field(min_length=1, description='Exact origins, or "*".')]
    allow_methods: list[str] = []
    allow_headers: list[str] = []
    expose_headers: list[str] = []
    max_age_s: Annotated[int | None, Field(ge=0, le=86400)] = None
    allow_credentials: bool = False


class RoutePolicies(BaseModel):
    """How a route shapes requests and responses."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_headers": {"set": {"x-env": "prod"}},
                    "rewrite": {"prefix": "/v2"},
                    "retries": {"attempts": 2},
                }
            ]
        },
    )

    request_headers: HeaderChanges | None = None
    response_headers: HeaderChanges | None = None
    rewrite: PathRewrite | None = None
    host_rewrite: Annotated[
        str | None, Field(description="Host header sent upstream.", max_length=253)
    ] = None
    timeout_ms: Annotated[
        int | None, Field(ge=1, le=3_600_000, description="Whole-request timeout.")
    ] = None
    retries: Retries | None = None
    cors: Cors | None = None
    idle_timeout_ms: Annotated[
        int | None,
        Field(
            ge=1,
            le=3_600_000,
            description="Longest silence on the request or response stream (Kong's "
            "read/write timeouts).",
        ),
    ] = None
    ip_allow: Annotated[
        list[str],
        Field(
            max_length=256,
            description="CIDRs allowed to use the route (the TCP peer); others get 403.",
        ),
    ] = []
    ip_deny: Annotated[
        list[str],
        Field(max_length=256, description="CIDRs refused with 403 (the TCP peer)."),
    ] = []

    @field_validator("ip_allow", "ip_deny")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        out = []
        for value in values:
            try:
                # Envoy masks the address by the prefix length; store it canonical.
                network = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or CIDR range") from None
            out.append(str(network))
        if len(set(out)) != len(out):
            raise ValueError("CIDR ranges must not repeat")
        return out


class Protocol(StrEnum):
    HTTP1 = "http1"
    HTTP2 = "http2"
    GRPC = "grpc"


class HealthCheck(BaseModel):
    """Active HTTP health checks: an endpoint failing them gets no traffic."""

    model_config = ConfigDict(extra="forbid")

    path: Annotated[str, Field(pattern=r"^/[^\s]*$")] = "/"
    interval_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 5000
    timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 1000
    unhealthy_threshold: Annotated[int, Field(ge=1, le=100)] = 2
    healthy_threshold: Annotated[int, Field(ge=1, le=100)] = 1


class OutlierDetection(BaseModel):
    """Passive: eject an endpoint after consecutive 5xx responses."""

    model_config = ConfigDict(extra="forbid")

    consecutive_5xx: Annotated[int, Field(ge=1, le=1000)] = 5
    interval_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 10_000
    base_ejection_time_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 30_000
    max_ejection_percent: Annotated[int, Field(ge=0, le=100)] = 10


class CircuitBreakers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_connections: Annotated[int | None, Field(ge=1)] = None
    max_pending_requests: Annotated[int | None, Field(ge=1)] = None
    max_requests: Annotated[int | None, Field(ge=1)] = None
    max_retries: Annotated[int | None, Field(ge=0)] = None
    retry_budget_percent: Annotated[
        float | None,
        Field(ge=0, le=100, description="Retries allowed as a share of active requests."),
    ] = None


class UpstreamTls(BaseModel):
    """Verify the upstream's certificate against `ca_pem`, with SNI `sni`."""

    model_config = ConfigDict(extra="forbid")

    sni: Annotated[str | None, Field(max_length=253)] = None
    ca_pem: Annotated[
        str | None, Field(description="PEM CA bundle; absent: certificate not verified.")
    ] = None

    @field_validator("ca_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("ca_pem must hold PEM certificates")
        return value


class ServicePolicies(BaseModel):
    """How Envoy talks to a service's endpoints."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "protocol": "http2",
                    "health_check": {"path": "/healthz"},
                    "circuit_breakers": {"retry_budget_percent": 20},
                }
            ]
        },
    )

    protocol: Protocol = Protocol.HTTP1
    health_check: HealthCheck | None = None
    outlier_detection: OutlierDetection | None = None
    circuit_breakers: CircuitBreakers | None = None
    tls: Annotated[
        UpstreamTls | None,
        Field(description="TLS to the endpoints (also implied by an https url)."),
    ] = None
