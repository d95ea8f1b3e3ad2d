"""Loading a declaration row by row: a stored row that today's validation refuses
is skipped, not fatal.

A row written by an older Turnout with looser rules (or by hand) must not stop the
whole declaration from loading. Rules:

1. A row whose spec does not validate is left out and named (kind, name, the first
   field and reason pydantic gives).
2. An entity that references a left-out one is left out too (a route to a skipped
   service, a split of a skipped route or towards a skipped service), so what
   loads keeps every reference the store's write rules promise.
3. What was skipped is logged once per change, kept for `turnout_storage_skipped_rows`
   and `/healthz`, and bounded (`SKIPPED_KEPT`).
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError

from turnout.models.entities import Entity
from turnout.models.errors import Conflict
from turnout.models.route import RouteSpec
from turnout.models.split import SplitSpec

log = logging.getLogger(__name__)

SKIPPED_KEPT = 100
"""Skipped rows named in the metric and `/healthz`; the count is always exact."""
_REASON_LIMIT = 200

SKIPPED_ROWS = Gauge(
    "turnout_storage_skipped_rows",
    "Stored rows left out of the declaration: invalid, or referencing one that is",
    ["kind", "name"],
)


@dataclass(frozen=True)
class SkippedRow:
    kind: str
    name: str
    reason: str


def _reason(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "row"
    return f"{where}: {first.get('msg', 'invalid')}"[:_REASON_LIMIT]


def specs_of(ent: Entity, rows: Iterable[object]) -> tuple[list[BaseModel], list[SkippedRow]]:
    """Rule 1: the rows' specs, and the rows that do not validate."""
    specs: list[BaseModel] = []
    skipped: list[SkippedRow] = []
    for row in rows:
        try:
            specs.append(ent.to_spec(row))  # type: ignore[arg-type]
        except ValidationError as exc:
            skipped.append(SkippedRow(ent.kind, str(getattr(row, "name", "?")), _reason(exc)))
    return specs, skipped


def specs_of_dicts(
    ent: Entity, stored: Mapping[str, dict[str, object]]
) -> tuple[dict[str, BaseModel], list[SkippedRow]]:
    """Rule 1 over stored JSON (audit history): name → spec, and what does not validate."""
    specs: dict[str, BaseModel] = {}
    skipped: list[SkippedRow] = []
    for name in sorted(stored):
        try:
            specs[name] = ent.spec.model_validate(stored[name])
        except ValidationError as exc:
            skipped.append(SkippedRow(ent.kind, name, _reason(exc)))
    return specs, skipped


def invalid_row(ent: Entity, row: object) -> Conflict:
    """The error for reading one row today's validation refuses: names the field."""
    try:
        ent.to_spec(row)  # type: ignore[arg-type]
    except ValidationError as exc:
        reason = _reason(exc)
        return Conflict(
            f"stored {ent.kind} '{getattr(row, 'name', '?')}' fails validation ({reason}); "
            "replace or delete it",
            field=reason.split(":", 1)[0],
        )
    raise AssertionError("the row validates")


def drop_dependents(specs: Mapping[str, dict[str, BaseModel]]) -> list[SkippedRow]:
    """Rule 2, in place on `specs` (plural → name → spec): what was dropped."""
    services, routes, splits = specs["services"], specs["routes"], specs["splits"]
    dropped: list[SkippedRow] = []
    for name, route in list(routes.items()):
        assert isinstance(route, RouteSpec)
        if route.service not in services:
            del routes[name]
            dropped.append(SkippedRow("route", name, f"service '{route.service}' was skipped"))
    for name, split in list(splits.items()):
        assert isinstance(split, SplitSpec)
        used = {t.service for t in split.targets} | {p.service for p in split.pins}
        if split.route not in routes:
            reason = f"route '{split.route}' was skipped"
        elif missing := sorted(used - services.keys()):
            reason = f"service '{missing[0]}' was skipped"
        else:
            continue
        del splits[name]
        dropped.append(SkippedRow("split", name, reason))
    return dropped


class SkippedReport:
    """The rows the last load left out, for the metric, the log and `/healthz`."""

    def __init__(self) -> None:
        self.rows: list[SkippedRow] = []
        self.count = 0

    def publish(self, rows: list[SkippedRow]) -> None:
        if rows == self.rows:
            return
        for old in self.rows[:SKIPPED_KEPT]:
            SKIPPED_ROWS.remove(old.kind, old.name)
        for row in rows[:SKIPPED_KEPT]:
            SKIPPED_ROWS.labels(row.kind, row.name).set(1)
            log.warning("stored %s '%s' skipped: %s", row.kind, row.name, row.reason)
        if len(rows) > SKIPPED_KEPT:
            log.warning("%d more stored rows skipped", len(rows) - SKIPPED_KEPT)
        self.rows, self.count = rows, len(rows)
