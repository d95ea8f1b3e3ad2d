"""Who may call what: the ONE table of admin API route -> least role, and its rules.

    viewer    every read (GET), never a secret: declaration, proxies (credentials
              redacted), audit, revisions, freezes, key ids and prefixes
    operator  also writes the declaration (services, routes, splits, consumers),
              drives plans, declares freezes and revokes keys
    admin     also mints secrets and changes the rules themselves: creates API keys,
              manages tokens, lifts freezes, overrides a freeze (header
              X-Turnout-Override-Reason on any write) and restores a past
              declaration, by `POST /revisions/{n}/restore` or by replacing the
              whole declaration with `POST /config` (a dry run too)

A freeze is a safety brake: anyone who may write may pull it, only an admin may
release it. A route missing from the table is refused at startup
(`check_rules`), so a new endpoint cannot slip in with no rule. This module
knows nothing about how a token is checked (principal.py) or when (auth.py's
middleware); the README's "Roles and tokens" table says the same in words.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.routing import compile_path

from turnout.models.entities import ENTITIES
from turnout.models.freeze import OVERRIDE_HEADER
from turnout.models.plan import PlanAction
from turnout.models.token import Role

PUBLIC_PATHS = frozenset(
    {"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
"""Served without a token: probes, scrapers and the API's own documentation."""

V, OP, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN


def _entity_rules() -> dict[tuple[str, str], Role]:
    rules: dict[tuple[str, str], Role] = {}
    for ent in ENTITIES.values():
        base, one = f"/{ent.plural}", f"/{ent.plural}/{{name}}"
        rules |= {("GET", base): V, ("POST", base): OP, ("GET", one): V}
        rules |= {(m, one): OP for m in ("PUT", "PATCH", "DELETE")}
    return rules


RULES: dict[tuple[str, str], Role] = {
    **_entity_rules(),
    **{("POST", f"/splits/{{name}}/{a.value}"): OP for a in PlanAction},
    ("GET", "/consumers/{name}/keys"): V,
    ("POST", "/consumers/{name}/keys"): A,  # mints a credential
    ("DELETE", "/consumers/{name}/keys/{key_id}"): OP,  # revoking only ever closes a door
    ("GET", "/proxies"): V,
    ("GET", "/proxies/{node_id}"): V,
    ("GET", "/proxies/{node_id}/config"): V,
    ("GET", "/audit"): V,
    ("GET", "/freezes"): V,
    ("POST", "/freezes"): OP,
    ("DELETE", "/freezes/{freeze_id}"): A,
    ("GET", "/revisions"): V,
    ("GET", "/revisions/{n}"): V,
    ("GET", "/revisions/{a}/diff/{b}"): V,
    ("POST", "/revisions/{n}/restore"): A,
    ("GET", "/config"): V,
    ("POST", "/config"): A,  # any past declaration can be posted back: a restore
    ("GET", "/tokens"): A,
    ("POST", "/tokens"): A,
    ("DELETE", "/tokens/{name}"): A,
}
"""(method, path template) -> the least role that may call it."""

OVERRIDE_ROLE = Role.ADMIN
"""The role a request needs to carry OVERRIDE_HEADER (a write through a freeze)."""


@dataclass(frozen=True)
class Rule:
    role: Role
    what: str
    """How a 403 names the request, e.g. "DELETE /freezes/{freeze_id}"."""


_COMPILED: list[tuple[re.Pattern[str], str, str, Role]] = [
    (compile_path(path)[0], method, path, role) for (method, path), role in RULES.items()
]


def rule_for(method: str, path: str) -> Rule | None:
    """The rule for a request; None when no route has this method and path (the
    router then answers 404 or 405)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    for regex, rule_method, template, role in _COMPILED:
        if rule_method == method and regex.match(path):
            return Rule(role, f"{method} {template}")
    return None


def needs_override_role(headers: Mapping[str, str]) -> bool:
    """Whether the request asks to pass a freeze (a non-blank OVERRIDE_HEADER);
    `headers` looks names up case-insensitively (Starlette's `Headers`)."""
    return bool(headers.get(OVERRIDE_HEADER, "").strip())


def check_rules(openapi: dict[str, Any]) -> None:
    """Raise unless every operation of the app has exactly one rule and every rule
    an operation: the table and the routes cannot drift apart."""
    operations = {
        (method.upper(), path)
        for path, item in openapi.get("paths", {}).items()
        for method in item
        if path not in PUBLIC_PATHS
    }
    if missing := sorted(operations - RULES.keys()):
        raise RuntimeError(f"admin routes without a role rule (turnout/admin/roles.py): {missing}")
    if stale := sorted(RULES.keys() - operations):
        raise RuntimeError(f"role rules without a route (turnout/admin/roles.py): {stale}")
