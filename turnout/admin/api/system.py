"""Health and audit endpoints: about Turnout itself rather than an entity."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, Field

from turnout.admin.deps import StoreDep
from turnout.admin.errors import PARAMS, documented
from turnout.storage.audit import AuditEvent

health_router = APIRouter(tags=["system"])
"""Mounted without auth, for load balancers and orchestrators."""
router = APIRouter(tags=["system"])


class SkippedRowOut(BaseModel):
    kind: str
    name: str
    reason: str = Field(
        description="The field and rule the stored row breaks, or what it references."
    )


class Health(BaseModel):
    status: str = Field(description='"ok" when the database answers.')
    revision: int = Field(description="The current global revision.")
    skipped_rows: list[SkippedRowOut] = Field(
        default_factory=list,
        description="Stored rows the last load left out (today's validation refuses "
        "them, or they reference one that it does), at most 100; absent when none.",
    )


@health_router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness and database reachability (no auth)",
    responses={503: documented("The database cannot be reached.")},
    response_model_exclude_defaults=True,
)
def healthz(store: StoreDep) -> Health:
    """Reads the revision, so a 200 also means the database answers."""
    skipped = [
        SkippedRowOut(kind=r.kind, name=r.name, reason=r.reason) for r in store.skipped_rows()
    ]
    return Health(status="ok", revision=store.revision(), skipped_rows=skipped[:100])


@health_router.get(
    "/metrics",
    summary="Prometheus metrics (no auth, like /healthz)",
    response_class=PlainTextResponse,
)
def metrics() -> PlainTextResponse:
    """Connected proxies, pushes, push duration, commit-to-ACK time, NACKs by type,
    stale nonces and suppressed resends, in the Prometheus text format. Open like
    `/healthz` so a scraper needs no admin credential; it reveals no declaration."""
    return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/audit",
    response_model=list[AuditEvent],
    summary="Recent writes, newest first",
    responses=PARAMS,
)
def audit(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many events.")] = 100,
    actor: Annotated[str | None, Query(description="Only events by this actor.")] = None,
    entity: Annotated[
        str | None,
        Query(
            description='Only events about this entity: a kind ("split") or kind/name '
            '("split/checkout"); freezes are kind "freeze".',
        ),
    ] = None,
    since: Annotated[datetime | None, Query(description="At or after this time.")] = None,
    until: Annotated[datetime | None, Query(description="Before this time.")] = None,
) -> list[AuditEvent]:
    """Every successful write leaves one event with the entity before and after;
    rejected requests leave none."""
    kind, _, name = (entity or "").partition("/")
    return store.audit(
        limit, actor=actor, kind=kind or None, name=name or None, since=since, until=until
    )
