"""Field types shared by several entity specs (like Kong's typedefs)."""

from typing import Annotated

import re2
from pydantic import Field, StringConstraints

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"),
    Field(
        description="Unique name: letters, digits and . _ ~ -, starting with a letter or digit, "
        "at most 128 characters.",
        examples=["orders"],
    ),
]

Tag = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9._~:/=-]{1,64}$"),
    Field(description="A free-form label used to select entities."),
]

Tags = Annotated[list[Tag], Field(default_factory=list, max_length=32)]

Port = Annotated[int, Field(ge=1, le=65535, description="TCP port.")]

Weight = Annotated[int, Field(ge=0, le=1_000_000, description="Non-negative integer weight.")]

HEADER_NAME_PATTERN = r"^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$"
"""An HTTP header name (RFC 9110 token), lower case as Envoy sees it."""

_UNCHANGEABLE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def header_name(value: str) -> str:
    """`value` lower-cased, or ValueError if it is no header Turnout lets a route use or
    change (a pseudo-header, or one the proxy manages itself)."""
    name = value.lower()
    if not re2.match(HEADER_NAME_PATTERN, name) or name in _UNCHANGEABLE_HEADERS:
        raise ValueError(f"{value!r} is not a header name a route can use")
    return name
