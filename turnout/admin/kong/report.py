"""What a Kong import produces: the declaration, and the report of what it did.

The report has three parts, and every field of the Kong file lands in one of
them or in the declaration: `imported` (mapped as Kong behaves), `differs`
(mapped, but something will behave differently, and what) and `not_mapped`
(left out, and what that changes). Keys are never in the report.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from turnout.models.entities import ENTITIES
from turnout.models.types import Tag

IMPORT_TAG = "kong-import"
_TAG = re.compile(r"^[A-Za-z0-9._~:/=-]{1,64}$")


@dataclass
class KongImport:
    """The declaration made from a Kong file, and what was left out and why."""

    target: dict[str, dict[str, BaseModel]] = field(
        default_factory=lambda: {kind: {} for kind in ENTITIES}
    )
    """Kind → name → spec: what `Store.apply` makes the declaration."""
    imported: list[str] = field(default_factory=list)
    """Mapped with Kong's behaviour."""
    differs: list[str] = field(default_factory=list)
    """Mapped, with a stated difference from Kong's behaviour."""
    not_mapped: list[str] = field(default_factory=list)
    """Left out, with what that changes."""
    keys: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """Consumer name → its Kong keys, in clear: stored after the apply, never printed."""
    expiry: dict[str, datetime] = field(default_factory=dict, repr=False)
    """Key → when it expires (a Kong credential's `ttl`), for the keys that have one."""

    def add(self, kind: str, data: dict[str, Any], origin: str) -> bool:
        """Validate `data` as a `kind` spec and keep it; report why not otherwise."""
        try:
            spec = ENTITIES[kind].spec.model_validate(data)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(map(str, first["loc"]))
            self.not_mapped.append(f"{origin}: {where}: {first['msg']}")
            return False
        self.target[kind][data["name"]] = spec
        self.imported.append(f"{kind} {data['name']} (from {origin})")
        return True

    def once(self, line: str) -> None:
        """A `differs` line that several entities share, listed once."""
        if line not in self.differs:
            self.differs.append(line)


def name_of(text: str) -> str:
    """A Turnout name made from a Kong name (invalid characters become `-`)."""
    cleaned = re.sub(r"[^A-Za-z0-9._~-]", "-", text).strip("-._~") or "unnamed"
    return cleaned[:128]


def tags_of(*items: dict[str, Any]) -> list[Tag]:
    """The Kong tags of `items` that are valid Turnout tags, plus `kong-import`."""
    tags: list[str] = []
    for item in items:
        tags += [t for t in item.get("tags") or [] if _TAG.match(str(t)) and t not in tags]
    return [*tags[:31], IMPORT_TAG]


def unknown_fields(
    item: dict[str, Any], known: set[str], defaults: dict[str, Any], origin: str, out: KongImport
) -> None:
    """Report every field of `item` that is neither mapped nor at Kong's default."""
    for key, value in item.items():
        if key in known or value is None:
            continue
        if key in defaults and value == defaults[key]:
            continue
        out.not_mapped.append(f"{origin}: {key}={value!r} not mapped")
