"""Field types shared by several entity specs (like Kong's typedefs).

Every string here reaches Envoy, so each type accepts what Envoy accepts and what
a request can carry, no more: Envoy checks its protos (`validate.rules`) when it
loads a resource, and one resource it refuses holds back the whole update. A
value that would be refused, or that no request could ever match, is refused at
the admin API with the field and the reason. One definition per kind of value;
specs use these rather than their own patterns.
"""

import ipaddress
import re
from functools import lru_cache
from typing import Annotated

import re2
from pydantic import AfterValidator, Field, StringConstraints

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

UINT32_MAX = 2**32 - 1
"""The largest value of Envoy's `UInt32Value` fields (circuit breaker thresholds)."""


def _printable(value: str) -> str:
    """`value` with control characters shown escaped, for error messages."""
    return ascii(value) if len(value) <= 80 else ascii(value[:77]) + "..."


# --- header names and values ---------------------------------------------------

HEADER_NAME_PATTERN = r"^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$"
"""An HTTP header name (RFC 9110 token), lower case as Envoy sees it."""

_UNCHANGEABLE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def matchable_header_name(value: str) -> str:
    """`value` lower-cased, or ValueError unless it is an RFC 9110 token of at most 128
    characters (which excludes `:`-pseudo-headers)."""
    name = value.lower()
    if not re2.match(HEADER_NAME_PATTERN, name):
        raise ValueError(
            f"{_printable(value)} is not a header name: 1-128 of a-z 0-9 and !#$%&'*+.^_`|~-"
        )
    return name


def header_name(value: str) -> str:
    """`value` lower-cased, or ValueError if it is no header Turnout lets a route use or
    change (a pseudo-header, or one the proxy manages itself)."""
    name = value.lower()
    if not re2.match(HEADER_NAME_PATTERN, name) or name in _UNCHANGEABLE_HEADERS:
        raise ValueError(f"{value!r} is not a header name a route can use")
    return name


HeaderName = Annotated[
    str,
    AfterValidator(matchable_header_name),
    Field(description="HTTP header name (RFC 9110 token, at most 128), lower-cased."),
]
ModifiableHeaderName = Annotated[
    str,
    AfterValidator(header_name),
    Field(
        description="HTTP header name a route may set or remove: not host, content-length, "
        "transfer-encoding or connection."
    ),
]

MAX_HEADER_VALUE = 4096
"""Characters in a header value; Envoy's HeaderValue limit is 16384 bytes (UTF-8)."""
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def check_utf8(value: str) -> str:
    """ValueError if `value` holds a lone surrogate (JSON's "\\ud800"): it has no UTF-8
    form, and every string Envoy reads is UTF-8."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"not valid Unicode: a lone surrogate at position {exc.start}"
            ) from None
    return value


def header_value(value: str) -> str:
    """ValueError if `value` holds a control character (RFC 9110 field-value: no NUL,
    CR, LF; Envoy's strict HTTP_HEADER_VALUE rule) or is too long."""
    if len(value) > MAX_HEADER_VALUE:
        raise ValueError(f"a header value has at most {MAX_HEADER_VALUE} characters")
    check_utf8(value)
    bad = _CONTROL.search(value)
    if bad:
        raise ValueError(
            f"a header value must not contain control characters: {bad.group()!r} "
            f"at position {bad.start()}"
        )
    return value


def header_value_to_send(value: str) -> str:
    """A header value Envoy adds as given: also without `%` (Envoy's formatters)."""
    header_value(value)
    if "%" in value:
        raise ValueError("header values must not contain '%' (Envoy formatters)")
    return value


HeaderValue = Annotated[
    str,
    AfterValidator(header_value),
    Field(description="HTTP header value: no control characters, at most 4096 characters."),
]
SentHeaderValue = Annotated[
    str,
    AfterValidator(header_value_to_send),
    Field(description="Header value Envoy sends: no control characters and no '%'."),
]

HttpMethod = Annotated[
    str,
    Field(pattern=r"^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|TRACE|CONNECT)$"),
]


# --- paths -----------------------------------------------------------------------

MAX_PATH = 1024
_PATH = re.compile(r"^/[\x21\x22\x24-\x7e]*$")


def http_path(value: str) -> str:
    """ValueError unless `value` is a request path a client can send: `/` then visible
    ASCII (no space, control character, `#` or non-ASCII: percent-encode those)."""
    if len(value) > MAX_PATH:
        raise ValueError(f"a path has at most {MAX_PATH} characters")
    if not value.startswith("/"):
        raise ValueError(f"a path must start with '/': {_printable(value)}")
    if not _PATH.fullmatch(value):
        bad = next(c for c in value if not _PATH.fullmatch("/" + c))
        raise ValueError(
            f"a path holds visible ASCII only (percent-encode the rest): {bad!r} in "
            f"{_printable(value)}"
        )
    return value


HttpPath = Annotated[
    str,
    AfterValidator(http_path),
    Field(description="Request path: '/' then visible ASCII, at most 1024 characters."),
]


# --- hosts -----------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@lru_cache(maxsize=65536)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_dns_name(host: str) -> bool:
    """A DNS name of letters, digits and hyphens (RFC 1123), an optional final dot."""
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in name.split("."))


def check_host(host: str) -> str:
    """Accept an IP address or a DNS name; raise ValueError naming the problem."""
    if is_ip(host):
        if "%" in host:  # Envoy parses no IPv6 zone ("fe80::1%eth0")
            raise ValueError(f"{_printable(host)}: an IPv6 zone index is not supported")
        return host
    if not is_dns_name(host):
        raise ValueError(f"{_printable(host)} is neither an IP address nor a valid DNS name")
    return host


def dns_name(host: str) -> str:
    """A DNS name that is not an IP address (an SNI may not be one: RFC 6066 §3)."""
    if is_ip(host) or not is_dns_name(host):
        raise ValueError(f"{_printable(host)} is not a DNS name (letters, digits, - and .)")
    return host


DnsName = Annotated[
    str,
    AfterValidator(dns_name),
    Field(description="DNS name: labels of letters, digits and '-', at most 253 characters."),
]


def host_pattern(value: str) -> str:
    """A route host: a DNS name or `*.` and one, lower-cased."""
    host = value.lower()
    bare = host[2:] if host.startswith("*.") else host
    if not is_dns_name(bare) or bare.endswith("."):
        raise ValueError(f"{_printable(value)} is not a host name or a `*.domain` wildcard")
    return host


HostPattern = Annotated[
    str,
    AfterValidator(host_pattern),
    Field(description="Host name, or `*.` and a domain; lower-cased."),
]

_HOST_PORT = re.compile(
    r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d{1,5}))?$"
)


def _host_and_port(value: str) -> tuple[str, int | None]:
    match = _HOST_PORT.fullmatch(value)
    if match is None:
        raise ValueError(f"{_printable(value)} is not host[:port]")
    port = match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    if match["v6"] is not None:
        try:
            ipaddress.IPv6Address(match["v6"])
        except ValueError:
            raise ValueError(f"{_printable(value)}: not an IPv6 address in brackets") from None
        return match["v6"], int(port) if port else None
    host = match["host"]
    if not (is_dns_name(host) or (is_ip(host) and ":" not in host)):
        raise ValueError(f"{_printable(value)}: the host is neither an IPv4 address nor a DNS name")
    return host, int(port) if port else None


def host_header(value: str) -> str:
    """A Host header value: a DNS name, an IPv4 address or `[IPv6]`, and an optional port."""
    _host_and_port(value)
    return value


HostHeader = Annotated[
    str,
    AfterValidator(host_header),
    Field(description="Host header: host[:port], the host a DNS name, IPv4 or [IPv6]."),
]


def cors_origin(value: str) -> str:
    """`*`, or an origin as browsers send it: `scheme://host[:port]`."""
    if value == "*":
        return value
    scheme, sep, rest = value.partition("://")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError(f"{_printable(value)} is not an origin like https://example.com or *")
    _host_and_port(rest)
    return value


CorsOrigin = Annotated[
    str,
    AfterValidator(cors_origin),
    Field(description='An origin, scheme://host[:port], or "*".'),
]


# --- cookies ---------------------------------------------------------------------

CookieName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"),
    Field(description="Cookie name (RFC 6265 token)."),
]
_COOKIE_OCTETS = re.compile(r"^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}$")


def cookie_value(value: str) -> str:
    """RFC 6265 cookie-octets: visible ASCII except `"`, `,`, `;` and backslash."""
    if not _COOKIE_OCTETS.fullmatch(value):
        raise ValueError(
            f"{_printable(value)} is not a cookie value: 1-256 visible ASCII characters "
            'except " , ; and \\'
        )
    return value


CookieValue = Annotated[
    str,
    AfterValidator(cookie_value),
    Field(description="Cookie value (RFC 6265 cookie-octets)."),
]
