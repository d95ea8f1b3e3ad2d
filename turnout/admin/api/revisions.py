"""`/revisions`: every past declaration, diffs between two, and restoring one."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from turnout.admin.api.entities import REVISION_HEADER
from turnout.admin.declarative import to_document
from turnout.admin.deps import ActorDep, OverrideDep, StoreDep
from turnout.admin.errors import CHANGE, LOOKUP, PARAMS, documented
from turnout.admin.params import DB_INT_MAX
from turnout.models import examples
from turnout.storage.revisions import EntityDiff, RevisionInfo, diff

router = APIRouter(prefix="/revisions", tags=["revisions"])

RevisionPath = Annotated[
    int,
    Path(
        ge=0,
        le=DB_INT_MAX,
        description="A revision number (0: empty).",
        openapi_examples={"first": {"summary": "The first revision", "value": 1}},
    ),
]


class RevisionList(BaseModel):
    """The shape of every list in the admin API."""

    items: list[RevisionInfo]
    revision: int = Field(description="The current revision.")


class RestoreBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=examples.schema_examples(examples.RESTORE))

    reason: Annotated[str, Field(max_length=1024, description="Recorded in the audit event.")] = ""


@router.get(
    "",
    response_model=RevisionList,
    summary="Revisions, newest first",
    description="Each revision's number, time, actor and reason; page back with `before`.",
    responses=PARAMS,
)
def list_revisions(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=DB_INT_MAX, description="Only revisions below this.")
    ] = None,
) -> RevisionList:
    items, revision = store.revision_listing(limit, before)
    return RevisionList(items=items, revision=revision)


@router.get("/{n}", summary="The whole declaration at revision n", responses=LOOKUP | PARAMS)
def get_revision(n: RevisionPath, store: StoreDep) -> dict[str, Any]:
    """In the declarative format (`turnout apply -f` takes it back), plus `revision`."""
    return {"revision": n, **to_document(store.declaration_at(n))}


@router.get(
    "/{a}/diff/{b}",
    response_model=dict[str, EntityDiff],
    summary="What changed from revision a to revision b",
    description="Per entity kind: the entities added, removed and changed (before and after).",
    responses=LOOKUP,
)
def diff_revisions(a: RevisionPath, b: RevisionPath, store: StoreDep) -> dict[str, EntityDiff]:
    return diff(store.declaration_at(a), store.declaration_at(b))


@router.post(
    "/{n}/restore",
    summary="Make a new revision equal to revision n (admin role)",
    responses=CHANGE
    | {
        403: documented("The token's role is not admin."),
        409: documented("Consumers with API keys would go, without `delete_keys=true`."),
        423: documented("A freeze covers an entity the restore would change."),
    },
)
def restore_revision(
    n: RevisionPath,
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    override: OverrideDep,
    body: Annotated[
        RestoreBody | None,
        Body(openapi_examples=examples.openapi_examples(examples.RESTORE)),
    ] = None,
    delete_keys: Annotated[
        bool, Query(description="Allow deleting consumers that have API keys (keys go too).")
    ] = False,
) -> dict[str, Any]:
    """One new revision (or none when nothing differs), subject to freezes.

    `{"reason": ...}` goes into the audit event (and the revision's `reason`).
    """
    reason = f"restore revision {n}" + (f": {body.reason}" if body and body.reason else "")
    result = store.restore_revision(
        n, actor, override_reason=override, reason=reason, delete_keys=delete_keys
    )
    assert result.revision is not None
    response.headers[REVISION_HEADER] = str(result.revision)
    return {"revision": result.revision, "changes": [c.summary() for c in result.changes]}
