"""Request policies of a route and upstream policies of a service.

Route (`RouteSpec.policies`): header changes in both directions, path rewrite
(regex or prefix), host rewrite, timeout, retries, CORS. Service
(`ServiceSpec.policies`): active HTTP health checks, outlier detection, circuit
breakers (with the retry budget), upstream TLS verification (CA, SNI) and the
upstream protocol (HTTP/1.1, HTTP/2, gRPC). Translated in
`turnout/xds/translate/policies.py`.
"""

import ipaddress
import re
from enum import StrEnum
from typing import Annotated

from cryptography import x509
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from turnout.models.regex import check_substitution, compile_checked
from turnout.models.types import (
    UINT32_MAX,
    CorsOrigin,
    DnsName,
    HostHeader,
    HttpMethod,
    HttpPath,
    ModifiableHeaderName,
    SentHeaderValue,
    matchable_header_name,
)


class HeaderChanges(BaseModel):
    """`add` appends a value, `set` replaces it, `remove` drops the header.

    `replace` and `add_if_absent` are Kong's request-transformer `replace` and `add`:
    the first changes only a header the client sent, the second only adds a header
    the client did not send. Envoy applies `remove` first, then `replace`,
    `add_if_absent`, `add` and `set` in that order (Kong: remove, replace, add, append).
    """

    model_config = ConfigDict(extra="forbid")

    add: Annotated[dict[ModifiableHeaderName, SentHeaderValue], Field(max_length=32)] = {}
    set: Annotated[dict[ModifiableHeaderName, SentHeaderValue], Field(max_length=32)] = {}
    remove: Annotated[list[ModifiableHeaderName], Field(max_length=32)] = []
    replace: Annotated[
        dict[ModifiableHeaderName, SentHeaderValue],
        Field(max_length=32, description="Overwrite these headers only when present."),
    ] = {}
    add_if_absent: Annotated[
        dict[ModifiableHeaderName, SentHeaderValue],
        Field(max_length=32, description="Add these headers only when absent."),
    ] = {}


class PathRewrite(BaseModel):
    """Either `prefix` (replaces the matched prefix) or `regex` + `substitution`."""

    model_config = ConfigDict(extra="forbid")

    prefix: Annotated[HttpPath | None, Field(description="Replacement of the matched prefix.")] = (
        None
    )
    regex: Annotated[
        str | None, Field(description="RE2 pattern over the path.", min_length=1, max_length=1024)
    ] = None
    substitution: Annotated[
        str | None,
        Field(
            description="Replacement; \\1 ... refer to groups. Visible ASCII.",
            pattern=r"^[\x21-\x7e]*$",
            max_length=1024,
        ),
    ] = None

    @model_validator(mode="after")
    def _one(self) -> "PathRewrite":
        if (self.prefix is None) == (self.regex is None):
            raise ValueError("give either `prefix` or `regex` (with `substitution`)")
        if self.regex is not None:
            compiled = compile_checked(self.regex)
            if self.substitution is None:
                raise ValueError("`regex` needs `substitution`")
            check_substitution(self.substitution, compiled.groups)
        elif self.substitution is not None:
            raise ValueError("`substitution` goes with `regex`, not `prefix`")
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


def _header_or_any(value: str) -> str:
    return value if value == "*" else matchable_header_name(value)


CorsHeader = Annotated[str, AfterValidator(_header_or_any)]
"""A header name in a CORS list, or "*" (any)."""


class Cors(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_origins: Annotated[
        list[CorsOrigin],
        Field(min_length=1, max_length=64, description='Origins (scheme://host[:port]), or "*".'),
    ]
    allow_methods: Annotated[list[HttpMethod], Field(max_length=9)] = []
    allow_headers: Annotated[list[CorsHeader], Field(max_length=64)] = []
    expose_headers: Annotated[list[CorsHeader], Field(max_length=64)] = []
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
        HostHeader | None, Field(description="Host header sent upstream (host[:port]).")
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

    path: Annotated[HttpPath, Field(description="Path (and query) asked for.")] = "/"
    interval_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 5000
    timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 1000
    unhealthy_threshold: Annotated[int, Field(ge=1, le=100)] = 2
    healthy_threshold: Annotated[int, Field(ge=1, le=100)] = 1


class OutlierDetection(BaseModel):
    """Passive: eject an endpoint after consecutive failures of the proxied traffic.

    An ejected endpoint gets no traffic for `base_ejection_time_ms` times the number
    of times it was ejected (at most 5 min, or the base time if longer), or until an
    active health check (`health_check`) passes. Only the consecutive counters eject:
    Envoy's success-rate ejection is off.
    """

    model_config = ConfigDict(extra="forbid")

    consecutive_5xx: Annotated[
        int,
        Field(
            ge=0,
            le=1000,
            description="Consecutive 5xx responses that eject an endpoint (0: not counted). "
            "Connection failures and timeouts count as 5xx unless "
            "`split_local_origin_errors`.",
        ),
    ] = 5
    consecutive_gateway_failure: Annotated[
        int | None,
        Field(
            ge=1,
            le=1000,
            description="Consecutive 502, 503 or 504 responses that eject an endpoint.",
        ),
    ] = None
    split_local_origin_errors: Annotated[
        bool,
        Field(
            description="Count connection failures, resets and timeouts apart from the "
            "endpoint's responses, in `consecutive_local_origin_failure` only."
        ),
    ] = False
    consecutive_local_origin_failure: Annotated[
        int | None,
        Field(
            ge=1,
            le=1000,
            description="Consecutive connection failures, resets or timeouts that eject "
            "an endpoint (needs `split_local_origin_errors`).",
        ),
    ] = None
    interval_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 10_000
    base_ejection_time_ms: Annotated[int, Field(ge=100, le=3_600_000)] = 30_000
    max_ejection_percent: Annotated[int, Field(ge=0, le=100)] = 10

    @model_validator(mode="after")
    def _counters(self) -> "OutlierDetection":
        if self.consecutive_local_origin_failure is not None and not self.split_local_origin_errors:
            # Envoy accepts it and never counts it: refuse rather than mislead.
            raise ValueError(
                "consecutive_local_origin_failure needs split_local_origin_errors: true "
                "(Envoy ignores it otherwise)"
            )
        if (
            not self.consecutive_5xx
            and self.consecutive_gateway_failure is None
            and self.consecutive_local_origin_failure is None
        ):
            raise ValueError(
                "outlier_detection ejects nothing: set consecutive_5xx above 0, "
                "consecutive_gateway_failure or consecutive_local_origin_failure"
            )
        return self


class CircuitBreakers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_connections: Annotated[int | None, Field(ge=1, le=UINT32_MAX)] = None
    max_pending_requests: Annotated[int | None, Field(ge=1, le=UINT32_MAX)] = None
    max_requests: Annotated[int | None, Field(ge=1, le=UINT32_MAX)] = None
    max_retries: Annotated[int | None, Field(ge=0, le=UINT32_MAX)] = None
    retry_budget_percent: Annotated[
        float | None,
        Field(ge=0, le=100, description="Retries allowed as a share of active requests."),
    ] = None


MAX_CA_PEM = 1 << 20
"""Characters in a CA bundle: one MiB holds hundreds of certificates."""
_PEM_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_BEGIN_LINE = re.compile(r"(?m)^-----BEGIN ")
_PEM_END_LINE = re.compile(r"(?m)^-----END ")
_PEM_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_ca_pem(value: str) -> None:
    """ValueError unless `value` is one or more PEM certificates that parse as X.509.

    Envoy loads `trusted_ca` with BoringSSL and refuses the whole cluster when a
    certificate does not parse; `cryptography` parses them the same way here. Only
    CERTIFICATE blocks are accepted: a private key has no business in a CA bundle.
    """
    if not value.isascii() or _PEM_CONTROL.search(value):
        raise ValueError("ca_pem is PEM text: ASCII, no control characters but tab and newlines")
    # BoringSSL reads a BEGIN or END line only at the start of a line; cryptography
    # finds one anywhere, so this is checked on its own.
    if value.count("-----BEGIN") != len(_PEM_BEGIN_LINE.findall(value)) or value.count(
        "-----END"
    ) != len(_PEM_END_LINE.findall(value)):
        raise ValueError("ca_pem: each -----BEGIN and -----END line must start a line")
    kinds = set(_PEM_BEGIN.findall(value))
    if not kinds:
        raise ValueError("ca_pem must hold PEM certificates (-----BEGIN CERTIFICATE-----)")
    if kinds != {"CERTIFICATE"}:
        others = ", ".join(sorted(kinds - {"CERTIFICATE"}))
        raise ValueError(f"ca_pem must hold only CERTIFICATE blocks, not {others}")
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError as exc:
        raise ValueError(f"ca_pem does not parse as PEM X.509 certificates: {exc}") from None


class UpstreamTls(BaseModel):
    """Verify the upstream's certificate against `ca_pem`, with SNI `sni`."""

    model_config = ConfigDict(extra="forbid")

    sni: Annotated[DnsName | None, Field(description="Server name sent (a DNS name).")] = None
    ca_pem: Annotated[
        str | None,
        Field(
            description="PEM CA bundle; absent: certificate not verified.",
            max_length=MAX_CA_PEM,
        ),
    ] = None

    @field_validator("ca_pem")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None:
            check_ca_pem(value)
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
