"""The Service entity: a backend that routes send traffic to.

A service is reached either through a `url` (one host, IP or DNS name) or a list
of weighted `endpoints`. Envoy sees it as one cluster named after the service.
"""

from functools import cached_property, lru_cache
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import SERVICE, schema_examples
from turnout.models.policies import ServicePolicies
from turnout.models.schema import Base
from turnout.models.types import Name, Port, Tags, check_host, is_ip

__all__ = ["Endpoint", "ParsedUrl", "ServiceRow", "ServiceSpec", "check_host", "is_ip", "parse_url"]


PARSED_URLS_KEPT = 65_536
"""Distinct service urls whose parts are kept (a declaration has one per service)."""


class Endpoint(BaseModel):
    """One upstream address of a service."""

    model_config = ConfigDict(extra="forbid")

    address: Annotated[str, Field(description="IP address or DNS name.", examples=["10.0.0.5"])]
    port: Port
    weight: Annotated[int, Field(ge=1, le=128, description="Load balancing weight.")] = 1

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_host(value)


class ParsedUrl(BaseModel):
    """A service `url` taken apart; shared between specs of the same url, so frozen."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["http", "https"]
    host: str
    port: int


@lru_cache(maxsize=PARSED_URLS_KEPT)
def parse_url(url: str) -> ParsedUrl:
    """`url` taken apart, or ValueError saying why it is not a service url.

    Parsed once, when a spec is validated: translation asks `ServiceSpec.parsed_url`,
    which finds the same `ParsedUrl` here rather than splitting the url again.
    """
    # urlsplit drops tabs and newlines silently; refuse them (and any other invisible
    # character) rather than store a url that is not the one in use.
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError("the url holds visible ASCII characters only")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("scheme must be http or https")
    if not parts.hostname:
        raise ValueError("a host is required, as in http://10.0.0.5:8080")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("only scheme, host and port are allowed (no path, query or fragment)")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid port: {exc}") from None
    if port == 0:
        raise ValueError("port must be between 1 and 65535")
    host = check_host(parts.hostname)
    return ParsedUrl(
        scheme=parts.scheme,  # type: ignore[arg-type]
        host=host,
        port=port or (443 if parts.scheme == "https" else 80),
    )


class ServiceSpec(BaseModel):
    """A backend: one cluster in Envoy."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(SERVICE))

    name: Name
    url: Annotated[
        str | None,
        Field(
            description="Where the service listens: http(s)://host[:port]. "
            "Mutually exclusive with `endpoints`.",
            examples=["http://10.0.0.5:8080"],
            max_length=2048,
        ),
    ] = None
    endpoints: Annotated[
        list[Endpoint] | None,
        Field(
            description="Weighted upstream addresses, all on plain HTTP. "
            "Mutually exclusive with `url`.",
            min_length=1,
            max_length=1000,
        ),
    ] = None
    connect_timeout_ms: Annotated[
        int, Field(ge=1, le=60_000, description="Upstream connect timeout in milliseconds.")
    ] = 1000
    policies: Annotated[
        ServicePolicies | None,
        Field(description="Health checks, outlier detection, circuit breakers, TLS, protocol."),
    ] = None
    tags: Tags

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            parse_url(value)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> "ServiceSpec":
        if (self.url is None) == (self.endpoints is None):
            raise ValueError("exactly one of `url` or `endpoints` must be given")
        return self

    @cached_property
    def parsed_url(self) -> ParsedUrl | None:
        """`url`'s parts, as validation parsed them (`parse_url` keeps them)."""
        return parse_url(self.url) if self.url else None

    @property
    def scheme(self) -> str:
        return self.parsed_url.scheme if self.parsed_url else "http"

    def resolved_endpoints(self) -> list[Endpoint]:
        """The endpoints, with `url` expanded into one."""
        return self.endpoint_list

    @cached_property
    def endpoint_list(self) -> list[Endpoint]:
        if self.endpoints is not None:
            return self.endpoints
        assert self.parsed_url is not None
        # Already validated by parse_url: no need to validate again.
        return [Endpoint.model_construct(address=self.parsed_url.host, port=self.parsed_url.port)]


class ServiceRow(Base):
    """How a `ServiceSpec` is stored: one column per spec field, same names."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    url: Mapped[str | None] = mapped_column(String(2048))
    endpoints: Mapped[list[dict[str, object]] | None] = mapped_column(JSON(none_as_null=True))
    connect_timeout_ms: Mapped[int] = mapped_column(Integer)
    policies: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    tags: Mapped[list[str]] = mapped_column(JSON)
