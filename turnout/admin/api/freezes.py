"""`/freezes`: declare, list and lift freezes.

Enforcement is not here: the store checks freezes inside every write
transaction (`turnout/storage/freezes.py`), so every write path obeys them.
Lifting answers as revoking a token or a key does (`turnout/admin/api/records.py`).
"""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status
from pydantic import BaseModel

from turnout.admin.api.records import delete_record
from turnout.admin.deps import ActorDep, StoreDep
from turnout.admin.errors import UNGATED_CREATE, documented, errors
from turnout.admin.params import DB_INT_MAX
from turnout.models import examples
from turnout.models.freeze import Freeze, FreezeCreate, FreezeView, now

router = APIRouter(prefix="/freezes", tags=["freezes"])


class FreezeList(BaseModel):
    items: list[FreezeView]


def _view(freeze: Freeze) -> FreezeView:
    return FreezeView(**freeze.model_dump(), state=freeze.state_at(now()))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FreezeView,
    summary="Freeze everything, or some services, routes or tags",
    responses=UNGATED_CREATE
    | {409: documented("The scope names a service or route that does not exist.")},
)
def create_freeze(
    body: Annotated[
        FreezeCreate, Body(openapi_examples=examples.openapi_examples(examples.FREEZE))
    ],
    store: StoreDep,
    actor: ActorDep,
) -> FreezeView:
    """While active, writes to covered entities get 423 naming the freeze; reads are
    unaffected and a split rollback always goes through. A freeze starts at
    `starts_at` (default now) and ends at `ends_at` or when lifted."""
    return _view(store.freezes.create(body, actor)[0])


@router.get("", response_model=FreezeList, summary="List freezes with their state")
def list_freezes(store: StoreDep) -> FreezeList:
    """Every freeze, scheduled, active, ended or lifted, with its scope and who declared
    (and lifted) it."""
    return FreezeList(items=[_view(f) for f in store.freezes.list()])


@router.delete(
    "/{freeze_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Lift a freeze",
    responses=errors(404, 422),
)
def lift_freeze(
    freeze_id: Annotated[
        int,
        Path(
            ge=1,
            le=DB_INT_MAX,
            description="The freeze's id.",
            openapi_examples={"first": {"summary": "Freeze 1", "value": 1}},
        ),
    ],
    store: StoreDep,
    actor: ActorDep,
) -> Response:
    """Lifting is audited and never frozen itself; lifting twice is harmless."""
    return delete_record(store.freezes, freeze_id, actor, revision_header=False)
