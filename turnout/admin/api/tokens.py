"""`/tokens`: create, list and revoke role tokens (admin role only).

    POST   /tokens          201 {name, role, ..., "token": "<shown only this once>"}
    GET    /tokens          [{name, role, created_at, created_by, expires_at}]
    DELETE /tokens/{name}   204

Only the sha256 of a token is stored; a lost token is revoked and replaced.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from turnout.admin.api.records import delete_record
from turnout.admin.deps import ActorDep, StoreDep
from turnout.admin.errors import LOOKUP, UNGATED_CREATE, documented
from turnout.models import examples
from turnout.models.token import CreatedToken, TokenCreate, TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedToken,
    summary="Create a token with a role",
    description="The answer is the only time the token is shown; only its sha256 is "
    "stored. Admin role.",
    responses=UNGATED_CREATE | {409: documented("A token with this name exists.")},
)
def create_token(
    body: Annotated[TokenCreate, Body(openapi_examples=examples.openapi_examples(examples.TOKEN))],
    store: StoreDep,
    actor: ActorDep,
) -> CreatedToken:
    return store.tokens.create(body, actor)[0]


@router.get(
    "",
    response_model=list[TokenInfo],
    summary="List tokens (never the tokens)",
    description="Name, role, creation and expiry of each token. Admin role.",
)
def list_tokens(store: StoreDep) -> list[TokenInfo]:
    return store.tokens.list()


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke a token",
    description="Requests with the token get 401 from now on. Admin role.",
    responses=LOOKUP,
)
def delete_token(
    name: Annotated[
        str,
        Path(
            description="Name of the token.",
            openapi_examples={"ci": {"summary": "The CI token", "value": "ci-deploy"}},
        ),
    ],
    store: StoreDep,
    actor: ActorDep,
) -> Response:
    return delete_record(store.tokens, name, actor, revision_header=False)
