"""The Route entity: which requests go to which service.

A route matches on hosts, paths, methods and headers; every listed category must
match (paths, hosts and methods each match when any of their values does).
"""

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from turnout.models.examples import ROUTE, schema_examples
from turnout.models.limits import Limits
from turnout.models.policies import RoutePolicies
from turnout.models.regex import (
    MAX_REGEX_PROGRAM_SIZE,
    check_regex,
    compile_checked,
    methods_regex,
    path_key_regex,
    path_key_strip_regex,
    strip_prefix_regex,
)
from turnout.models.route_auth import RouteAuth
from turnout.models.schema import Base
from turnout.models.types import (
    HeaderName,
    HeaderValue,
    HostPattern,
    HttpMethod,
    Name,
    Tags,
    http_path,
)

__all__ = [
    "DEFAULT_GROUP",
    "MAX_REGEX_PROGRAM_SIZE",
    "HttpMethod",
    "PathKind",
    "PathMatch",
    "RouteRow",
    "RouteSpec",
    "check_regex",
]


class PathKind(StrEnum):
    PREFIX = "prefix"
    EXACT = "exact"
    REGEX = "regex"


class PathMatch(BaseModel):
    """One path matcher. A bare string in a request means `{"prefix": string}`."""

    model_config = ConfigDict(extra="forbid")

    kind: Annotated[PathKind, Field(description="prefix, exact or regex (RE2 syntax).")] = (
        PathKind.PREFIX
    )
    value: Annotated[str, Field(min_length=1, max_length=1024)]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: object) -> object:
        if isinstance(data, str):
            return {"kind": "prefix", "value": data}
        if isinstance(data, dict) and len(data) == 1:
            ((key, value),) = data.items()
            if key in PathKind.__members__.values():
                return {"kind": key, "value": value}
        return data

    @model_validator(mode="after")
    def _check(self) -> "PathMatch":
        if self.kind is PathKind.REGEX:
            check_regex(self.value)
        else:
            # A prefix or exact path is compared with the request's path, which holds
            # visible ASCII only: anything else could never match.
            http_path(self.value)
        return self


DEFAULT_GROUP = "default"
"""The gateway group of proxies whose bootstrap names no node cluster, and of routes
that name no group."""


class RouteSpec(BaseModel):
    """Requests matching `hosts`, `paths`, `methods` and `headers` go to `service`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(ROUTE))

    name: Name
    hosts: Annotated[
        list[HostPattern],
        Field(
            description="Host names (a leading `*.` wildcard is allowed). Empty: any host.",
            max_length=64,
        ),
    ] = []
    paths: Annotated[
        list[PathMatch],
        Field(
            description='Path matchers: "/api" (prefix), {"exact": "/x"}, '
            '{"regex": "/v[0-9]+/.*"}. A regex (RE2) must match the whole path, query '
            "string excluded. Empty: any path.",
            max_length=64,
        ),
    ] = []
    methods: Annotated[
        list[HttpMethod], Field(description="HTTP methods. Empty: any method.", max_length=9)
    ] = []
    headers: Annotated[
        dict[HeaderName, HeaderValue],
        Field(
            description="Request headers that must be present with exactly this value.",
            max_length=32,
        ),
    ] = {}
    service: Annotated[str, Field(description="Name of the service that receives the traffic.")]
    strip_path: Annotated[
        bool,
        Field(description="Remove the matched prefix before the request goes upstream."),
    ] = False
    priority: Annotated[
        int, Field(ge=-1000, le=1000, description="Higher priority routes are matched first.")
    ] = 0
    groups: Annotated[
        list[Name],
        Field(
            description="Gateway groups (Envoy `node.cluster`) whose proxies serve this route.",
            min_length=1,
            max_length=32,
        ),
    ] = [DEFAULT_GROUP]
    auth: Annotated[
        RouteAuth | None,
        Field(description="API key authentication (`turnout/models/route_auth.py`). Absent: open."),
    ] = None
    limits: Annotated[
        Limits | None,
        Field(description="Burst limits and quotas; per consumer when the route has auth."),
    ] = None
    policies: Annotated[
        RoutePolicies | None,
        Field(description="Headers, rewrites, timeout, retries, CORS (models/policies.py)."),
    ] = None
    tags: Tags

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        if len(set(hosts)) != len(hosts):
            raise ValueError("hosts must not repeat")
        return hosts

    @field_validator("groups")
    @classmethod
    def _groups(cls, groups: list[str]) -> list[str]:
        if len(set(groups)) != len(groups):
            raise ValueError("groups must not repeat")
        return sorted(groups)

    @field_validator("methods")
    @classmethod
    def _methods(cls, methods: list[str]) -> list[str]:
        if len(set(methods)) != len(methods):
            raise ValueError("methods must not repeat")
        return methods

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        if "host" in headers:
            raise ValueError("'host' is not a header name that can be matched (use `hosts`)")
        return headers

    @model_validator(mode="after")
    def _strip(self) -> "RouteSpec":
        if self.strip_path and any(p.kind is not PathKind.PREFIX for p in self.paths):
            raise ValueError("strip_path works with prefix paths only")
        path_key = self.auth is not None and self.auth.path_source is not None
        if self.strip_path and path_key:
            raise ValueError("strip_path cannot be combined with a `path` key source")
        rewrite = self.policies.rewrite if self.policies else None
        if rewrite is not None and (self.strip_path or path_key):
            raise ValueError(
                "policies.rewrite cannot be combined with strip_path or a `path` key source"
            )
        prefix_rewrite = rewrite is not None and rewrite.prefix is not None
        if prefix_rewrite and any(p.kind is not PathKind.PREFIX for p in self.paths):
            raise ValueError("policies.rewrite.prefix works with prefix paths only")
        self._check_built_regexes()
        return self

    def _check_built_regexes(self) -> None:
        """The regexes translation builds from this route compile within Envoy's limit."""
        if len(self.methods) > 1:
            compile_checked(methods_regex(self.methods), "methods regex")
        if self.strip_path:
            for path in self.paths:
                if path.value != "/":
                    compile_checked(strip_prefix_regex(path.value), "strip_path regex")
        source = self.auth.path_source if self.auth is not None else None
        if source is not None:
            prefix, suffix = source.path_prefix, source.path_suffix
            compile_checked(path_key_regex(prefix, suffix), "auth path template regex")
            compile_checked(path_key_strip_regex(prefix, suffix), "auth path template regex")


class RouteRow(Base):
    """How a `RouteSpec` is stored. `paths` is a JSON list of `{kind, value}`.

    The foreign key is a safety net; the store checks references first so that
    the error names the field.
    """

    __tablename__ = "routes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    hosts: Mapped[list[str]] = mapped_column(JSON)
    paths: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    methods: Mapped[list[str]] = mapped_column(JSON)
    headers: Mapped[dict[str, str]] = mapped_column(JSON)
    service: Mapped[str] = mapped_column(String(128), ForeignKey("services.name"), index=True)
    strip_path: Mapped[bool] = mapped_column(Boolean)
    priority: Mapped[int] = mapped_column(Integer)
    groups: Mapped[list[str]] = mapped_column(JSON)
    auth: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    limits: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    policies: Mapped[dict[str, object] | None] = mapped_column(JSON(none_as_null=True))
    tags: Mapped[list[str]] = mapped_column(JSON)
