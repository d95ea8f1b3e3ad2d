"""`auth` on a route: which API keys it accepts, where they are read, who may pass.

Envoy's `api_key_auth` filter enforces it (see `turnout/xds/translate/api_key_auth.py`).
A key is looked for in the header and query sources in order, and the first one
present is used; the path source is read only when none of them carries a key,
wherever it is listed (every path that matches the template has a segment where
the key would be, so read first it would take `today` in `/forecast/today` for a
key and shadow every other source). The path is cut only for a key read from it.

- `{"header": "x-api-key"}`: a request header (a `Bearer ` prefix is dropped);
- `{"query": "apikey"}`: a query parameter;
- `{"path": "/forecast/{key}"}`: a URL path segment, for clients of older gateways.
  The template is literal segments and exactly one `{key}` segment; it matches the
  start of the path. Envoy copies the segment into a header before authentication
  and removes it from the path before the request goes upstream.

A route without `auth` (or with `required: false`) is open.
"""

from typing import Annotated

import re2
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from turnout.models.types import Name, header_name

DEFAULT_HEADERS = ("apikey", "x-api-key")
DEFAULT_CONSUMER_HEADER = "x-consumer-name"
KEY_SEGMENT = "{key}"
_SEGMENT = r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$"


class KeySource(BaseModel):
    """Where a key may be found: exactly one of `header`, `query` or `path`."""

    model_config = ConfigDict(extra="forbid")

    header: Annotated[str | None, Field(description="Request header name.")] = None
    query: Annotated[
        str | None, Field(description="Query parameter name.", pattern=r"^[A-Za-z0-9._~-]{1,128}$")
    ] = None
    path: Annotated[
        str | None,
        Field(
            description="Path template with one `{key}` segment, e.g. `/forecast/{key}`.",
            max_length=512,
        ),
    ] = None

    @field_validator("header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return None if value is None else header_name(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        segments = value.split("/")
        if segments[0] != "" or len(segments) < 2:
            raise ValueError(f"path template {value!r} must start with '/'")
        if segments.count(KEY_SEGMENT) != 1:
            raise ValueError(
                f"path template {value!r} must have exactly one '{KEY_SEGMENT}' segment"
            )
        for segment in segments[1:]:
            if segment != KEY_SEGMENT and not re2.match(_SEGMENT, segment):
                raise ValueError(
                    f"path template {value!r}: segment {segment!r} must be literal "
                    f"(letters, digits, -._~ and sub-delims) or '{KEY_SEGMENT}'"
                )
        return value

    @model_validator(mode="after")
    def _one(self) -> "KeySource":
        given = [f for f in ("header", "query", "path") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `header`, `query` or `path`")
        return self

    @property
    def path_prefix(self) -> str:
        """The literal segments before `{key}` ("/forecast"; "" for "/{key}")."""
        assert self.path is not None
        return self.path.split("/" + KEY_SEGMENT, 1)[0]

    @property
    def path_suffix(self) -> str:
        """The literal segments after `{key}` ("" for "/forecast/{key}")."""
        assert self.path is not None
        return self.path.split("/" + KEY_SEGMENT, 1)[1]


def _default_sources() -> list[KeySource]:
    return [KeySource(header=h) for h in DEFAULT_HEADERS]


class RouteAuth(BaseModel):
    """Authentication of a route by API key."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key_sources": [{"path": "/forecast/{key}"}, {"header": "x-api-key"}],
                    "allow_groups": ["free"],
                }
            ]
        },
    )

    required: Annotated[
        bool, Field(description="true: a valid key is required (401 otherwise). false: open.")
    ] = True
    key_sources: Annotated[
        list[KeySource],
        Field(
            description="Where keys are read, in order. Default: headers `apikey` and `x-api-key`.",
            min_length=1,
            max_length=8,
            default_factory=_default_sources,
        ),
    ]
    allow_consumers: Annotated[
        list[Name],
        Field(description="Consumers allowed on the route (403 for others).", max_length=1000),
    ] = []
    allow_groups: Annotated[
        list[Name],
        Field(description="Consumer groups allowed on the route (403 for others).", max_length=64),
    ] = []
    consumer_header: Annotated[
        str,
        Field(description="Request header that tells the upstream who the consumer is."),
    ] = DEFAULT_CONSUMER_HEADER
    kong_consumer_headers: Annotated[
        bool,
        Field(
            description="Also send Kong's `X-Consumer-Username` (the consumer's name), "
            "`X-Consumer-ID` (its `kong_id`) and `X-Consumer-Custom-ID` (its `custom_id`) "
            "upstream, for upstreams moved from Kong. Client-sent `X-Consumer-*`, "
            "`X-Credential-Identifier` and `X-Anonymous-Consumer` headers are dropped on "
            "every route that checks keys, and with this set on an open route "
            "(`required: false`) too."
        ),
    ] = False

    @field_validator("consumer_header")
    @classmethod
    def _consumer_header(cls, value: str) -> str:
        return header_name(value)

    @field_validator("allow_consumers", "allow_groups")
    @classmethod
    def _unique(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("names must not repeat")
        return sorted(names)

    @model_validator(mode="after")
    def _sources(self) -> "RouteAuth":
        seen = [s.model_dump_json(exclude_none=True) for s in self.key_sources]
        if len(set(seen)) != len(seen):
            raise ValueError("key_sources must not repeat")
        if sum(s.path is not None for s in self.key_sources) > 1:
            raise ValueError("at most one `path` key source per route")
        if any(s.header == self.consumer_header for s in self.key_sources):
            raise ValueError("consumer_header must differ from every key source header")
        return self

    @property
    def path_source(self) -> KeySource | None:
        return next((s for s in self.key_sources if s.path is not None), None)

    @property
    def restricted(self) -> bool:
        """Whether only some consumers may pass (403 for the others)."""
        return bool(self.allow_consumers or self.allow_groups)
