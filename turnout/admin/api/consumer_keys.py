"""API keys of a consumer: `/consumers/{name}/keys`.

    POST   /consumers/{name}/keys       generate (or import) a key: 201, shown once
    GET    /consumers/{name}/keys       ids, prefixes and expiry; never the keys
    DELETE /consumers/{name}/keys/{id}  revoke: 204

The consumer itself is served by the generic entity router (`entities.py`).
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status
from fastapi.exceptions import RequestValidationError

from turnout.admin.api.entities import REVISION_HEADER
from turnout.admin.api.records import delete_record
from turnout.admin.deps import ActorDep, StoreDep
from turnout.admin.errors import CHANGE, LOOKUP, documented, errors
from turnout.models import examples
from turnout.models.key import KeyCreate, KeyCreated, KeyInfo

router = APIRouter(prefix="/consumers/{name}/keys", tags=["consumers"])

ConsumerName = Annotated[
    str,
    Path(
        description="Name of the consumer.",
        openapi_examples=examples.name_example(examples.CONSUMER),
    ),
]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=KeyCreated,
    summary="Create an API key",
    description="Generates a strong key, or stores the given one (migration from another "
    "gateway). The answer is the only time the key is shown; afterwards only its id and "
    "prefix are. 409 when the key is already in use by any consumer; 503 when Turnout "
    "runs without TURNOUT_SECRET_KEY.",
    responses=CHANGE
    | {
        409: documented("The key is already in use."),
        422: documented("Invalid key or expiry."),
        503: documented("TURNOUT_SECRET_KEY is not set, or the database cannot be reached."),
    },
)
def create_key(
    name: ConsumerName,
    response: Response,
    store: StoreDep,
    actor: ActorDep,
    body: Annotated[
        KeyCreate | None, Body(openapi_examples=examples.openapi_examples(examples.KEY))
    ] = None,
) -> Any:
    body = body or KeyCreate()
    if body.expires_at is not None and body.expires_at <= datetime.now(UTC):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "expires_at"],
                    "msg": "must be in the future",
                }
            ]
        )
    created, revision = store.keys.of(name).create(body, actor)
    response.headers[REVISION_HEADER] = str(revision)
    return created


@router.get(
    "",
    response_model=list[KeyInfo],
    summary="List a consumer's API keys",
    description="Id, prefix, creation and expiry of each key; never the key itself.",
    responses=LOOKUP,
)
def list_keys(name: ConsumerName, store: StoreDep) -> Any:
    return store.keys.of(name).list()


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Revoke an API key",
    description="The key stops working once the proxies have the new revision (header "
    f"{REVISION_HEADER}).",
    responses=errors(404, 422, 423),
)
def revoke_key(
    name: ConsumerName,
    key_id: Annotated[
        str,
        Path(
            description="The key's id (`GET /consumers/{name}/keys`).",
            openapi_examples={"id": {"summary": "A key id", "value": "3f2a9c1b7d4e"}},
        ),
    ],
    store: StoreDep,
    actor: ActorDep,
) -> Response:
    return delete_record(store.keys.of(name), key_id, actor, revision_header=True)
