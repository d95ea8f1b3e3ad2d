"""`POST /config` and `GET /config`: the whole declaration as one document."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from turnout.admin.api.entities import REVISION_HEADER
from turnout.admin.declarative import DocumentError, parse_document, to_document
from turnout.admin.deps import ActorDep, OverrideDep, StoreDep
from turnout.admin.errors import CREATE, documented
from turnout.models import examples
from turnout.models.types import Tag

router = APIRouter(prefix="/config", tags=["config"])


class ApplyReport(BaseModel):
    dry_run: bool
    revision: int | None = Field(description="The revision after the apply; null on a dry run.")
    changes: list[str] = Field(
        description='e.g. "create service orders", "delete consumer acme (2 API keys)", '
        "in write order."
    )


@router.get(
    "",
    summary="The whole declaration as a declarative document",
    description="What `POST /config` (and `turnout apply -f`) takes back; API keys are not in it.",
)
def get_config(store: StoreDep) -> dict[str, Any]:
    return to_document(store.load())


@router.post(
    "",
    response_model=ApplyReport,
    summary="Make the declaration equal to a document (all or nothing)",
    description="Creates, replaces and deletes entities so the declaration equals the "
    "document, in one revision; `dry_run` reports the changes without making them, "
    "`select_tag` limits it to entities with the tag. Admin role.",
    responses=CREATE
    | {
        409: documented(
            "A reference is broken, or consumers with API keys would be deleted without "
            "`delete_keys=true` (the detail names them); nothing changed."
        ),
        422: documented("An entity is invalid; `detail` locates each; nothing changed."),
        423: documented("A freeze covers a changed entity; nothing changed."),
    },
)
def apply_config(
    document: Annotated[
        dict[str, Any],
        Body(
            description='{"_format_version": "1", ...}',
            openapi_examples=examples.openapi_examples(examples.CONFIG),
        ),
    ],
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    override: OverrideDep,
    dry_run: Annotated[bool, Query(description="Check everything, change nothing.")] = False,
    select_tag: Annotated[Tag | None, Query(description="Manage only entities with it.")] = None,
    delete_keys: Annotated[
        bool, Query(description="Allow deleting consumers that have API keys (keys go too).")
    ] = False,
    reason: Annotated[
        str | None,
        Query(max_length=1024, description="Why: recorded in the audit event and the revision."),
    ] = None,
) -> ApplyReport:
    try:
        target = parse_document(document)
    except DocumentError as exc:
        raise RequestValidationError(
            [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors]
        ) from None
    result = store.apply(
        target,
        actor,
        select_tag=select_tag,
        dry_run=dry_run,
        delete_keys=delete_keys,
        override_reason=override,
        reason=reason.strip() if reason and reason.strip() else None,
    )
    if result.revision is not None:
        response.headers[REVISION_HEADER] = str(result.revision)
    return ApplyReport(
        dry_run=dry_run, revision=result.revision, changes=[c.summary() for c in result.changes]
    )
