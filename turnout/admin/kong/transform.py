"""Kong `request-transformer` → route `policies.request_headers`.

Kong applies, in order: remove → rename → replace → add → append. `replace`
changes a header only when the client sent it, `add` only when it did not,
`append` always adds a value. Turnout's `replace`, `add_if_absent` and `add`
are exactly those (Envoy `OVERWRITE_IF_EXISTS`, `ADD_IF_ABSENT`,
`APPEND_IF_EXISTS_OR_ADD`), applied in Kong's order after `remove`.

A header filled from a URI capture, `apikey:$(uri_captures.apikey)`, is how a
Kong route reads a key from the URL path: it is handed to key-auth as a path
key source (plugins.py) instead of becoming a header change.
"""

import re
from typing import Any

from turnout.admin.kong.report import KongImport

_CAPTURE = re.compile(r"""^\$\(\s*uri_captures(?:\.(\w+)|\[\s*["'](\w+)["']\s*\])\s*\)$""")
_ACTIONS = {"replace": "replace", "add": "add_if_absent", "append": "add"}


def _pairs(
    items: list[str],
    action: str,
    origin: str,
    out: KongImport,
    captures: dict[str, str],
    path_keys: dict[str, str],
) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = str(item).partition(":")
        name = name.strip().lower()
        capture = _CAPTURE.match(value.strip())
        if capture and action == "add" and (capture[1] or capture[2]) in captures:
            path_keys[name] = captures[capture[1] or capture[2]]
            continue
        if not sep or "$(" in value or "%" in value or "\r" in value or "\n" in value:
            out.not_mapped.append(f"{origin}: request-transformer {action} {name!r} not mapped")
            continue
        pairs[name] = value
    return pairs


def request_transformer(
    config: dict[str, Any], origin: str, out: KongImport, captures: dict[str, str]
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """(the route's `request_headers`, header → path template of URI-captured keys)."""
    changes: dict[str, Any] = {}
    path_keys: dict[str, str] = {}
    for action in ("remove", "rename", "replace", "add", "append"):
        part = config.get(action) or {}
        for what in sorted(part):
            if what != "headers" and part[what]:
                out.not_mapped.append(f"{origin}: request-transformer {action}.{what} not mapped")
        headers = part.get("headers") or []
        if not headers:
            continue
        if action == "remove":
            changes["remove"] = [str(h).strip().lower() for h in headers]
        elif action == "rename":
            out.not_mapped.append(f"{origin}: request-transformer rename.headers not mapped")
        else:
            pairs = _pairs(headers, action, origin, out, captures, path_keys)
            if pairs:
                changes[_ACTIONS[action]] = pairs
    if config.get("http_method"):
        out.not_mapped.append(f"{origin}: request-transformer http_method not mapped")
    return changes or None, path_keys
