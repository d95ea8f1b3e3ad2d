"""One router per entity kind, all made by `entity_router` from the registry.

Nothing here names services, routes or splits: every kind in
`turnout.models.entities.ENTITIES` gets the same seven endpoints under `/<plural>`:

    POST   /<plural>          create (201)
    GET    /<plural>          {"items": [...], "revision": N}, sorted by name
    GET    /<plural>/{name}
    PUT    /<plural>/{name}   replace; `name` in the body is optional but must match
    PATCH  /<plural>/{name}   top-level JSON merge patch, then the whole spec revalidated
    DELETE /<plural>/{name}   204

Every write answers with header `X-Turnout-Revision: <revision it produced>`.

The writes are `async def` and hand the store call to the thread pool themselves:
one thread hop per write. A plain `def` endpoint costs two (FastAPI also validates
its answer in the pool), and each hop is a wait for the GIL while the snapshot cache
translates the very commit (issue 17). Reads stay plain `def`.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError, create_model
from starlette.concurrency import run_in_threadpool

from turnout.admin.deps import ActorDep, OverrideDep, StoreDep
from turnout.admin.errors import (
    CHANGE,
    CREATE,
    LOOKUP,
    REMOVE,
    documented,
    request_validation_error,
)
from turnout.models import examples
from turnout.models.entities import Entity
from turnout.models.types import Name

REVISION_HEADER = "X-Turnout-Revision"

_CONFLICT = documented("Conflicts with another entity (duplicate name, broken reference).")


def _revision_header(response: Response, revision: int) -> None:
    response.headers[REVISION_HEADER] = str(revision)


def _validate(ent: Entity, name: str, data: dict[str, Any]) -> BaseModel:
    """Validate `data` as the entity `name`, rejecting a rename with a 422."""
    if data.setdefault("name", name) != name:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "name"],
                    "msg": f"must be {name!r} as in the path: an entity cannot be renamed "
                    "(delete it and create a new one)",
                }
            ]
        )
    try:
        return ent.spec.model_validate(data)
    except ValidationError as exc:
        raise request_validation_error(exc) from None


def entity_router(ent: Entity) -> APIRouter:
    """The endpoints for one entity kind, derived from its spec."""
    spec_cls: Any = ent.spec  # a runtime type: FastAPI reads it, type checkers cannot
    kind = ent.kind
    router = APIRouter(prefix=f"/{ent.plural}", tags=[ent.plural])
    list_model: Any = create_model(
        f"{spec_cls.__name__}List",
        items=(list[spec_cls], ...),
        revision=(int, ...),
    )
    # PUT takes the spec with `name` optional, since the path already names it.
    put_model: Any = create_model(
        f"{spec_cls.__name__}Put",
        __base__=spec_cls,
        name=(Name | None, None),
    )
    created = examples.ENTITY[kind]
    name_path = Annotated[
        str,
        Path(description=f"Name of the {kind}.", openapi_examples=examples.name_example(created)),
    ]
    first = dict(list(created.items())[:1])  # the one the path example names

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=spec_cls,
        summary=f"Create a {kind}",
        description=f"Answers the {kind} as stored (defaults filled in), with header "
        f"{REVISION_HEADER}. A name already in use is a 409.",
        responses=CREATE | {409: _CONFLICT},
    )
    async def create(
        spec: Annotated[spec_cls, Body(openapi_examples=examples.openapi_examples(created))],
        response: Response,
        store: StoreDep,
        actor: ActorDep,
        override: OverrideDep,
    ) -> Any:
        revision = await run_in_threadpool(
            store.create, kind, spec, actor, override_reason=override
        )
        _revision_header(response, revision)
        return spec

    @router.get(
        "",
        response_model=list_model,
        summary=f"List {ent.plural}",
        description=f"Every {kind}, sorted by name, and the revision they were read at.",
    )
    def list_all(store: StoreDep) -> Any:
        items, revision = store.listing(kind)
        return {"items": items, "revision": revision}

    @router.get(
        "/{name}",
        response_model=spec_cls,
        summary=f"Get a {kind}",
        description=f"The {kind} as stored, defaults filled in.",
        responses=LOOKUP,
    )
    def get(name: name_path, store: StoreDep) -> Any:
        return store.get(kind, name)

    @router.put(
        "/{name}",
        response_model=spec_cls,
        summary=f"Replace a {kind}",
        description="Fields left out take their defaults. `name` may be omitted; if given "
        "it must equal the path (renaming is not supported).",
        responses=CHANGE | {409: _CONFLICT},
    )
    async def replace(
        name: name_path,
        body: Annotated[put_model, Body(openapi_examples=examples.openapi_examples(first))],
        response: Response,
        store: StoreDep,
        actor: ActorDep,
        override: OverrideDep,
    ) -> Any:
        spec = _validate(ent, name, body.model_dump(exclude_unset=True))
        revision = await run_in_threadpool(
            store.replace, kind, name, spec, actor, override_reason=override
        )
        _revision_header(response, revision)
        return spec

    @router.patch(
        "/{name}",
        response_model=spec_cls,
        summary=f"Update some fields of a {kind}",
        description="A JSON merge patch (RFC 7386) applied at the top level: each given "
        "field replaces the stored one whole, and `null` removes a field so it takes its "
        "default. The result is validated as a whole spec.",
        responses=CHANGE | {409: _CONFLICT},
    )
    async def patch(
        name: name_path,
        changes: Annotated[
            dict[str, Any],
            Body(
                description=f"Fields of the {kind} to change.",
                openapi_examples=examples.openapi_examples(examples.PATCH[kind]),
            ),
        ],
        response: Response,
        store: StoreDep,
        actor: ActorDep,
        override: OverrideDep,
    ) -> Any:
        def merged(current: BaseModel) -> BaseModel:
            data = current.model_dump(mode="json")
            for field, value in changes.items():
                if value is None:
                    data.pop(field, None)
                else:
                    data[field] = value
            return _validate(ent, name, data)

        # Read and write in ONE transaction (and one thread hop): a write landing in
        # between cannot be lost, and the read costs no transaction of its own.
        spec, revision = await run_in_threadpool(
            store.modify, kind, name, merged, actor, override_reason=override
        )
        _revision_header(response, revision)
        return spec

    @router.delete(
        "/{name}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        summary=f"Delete a {kind}",
        description=f"Answers 204 with header {REVISION_HEADER}; 409 while another "
        f"entity still refers to the {kind}.",
        responses=REMOVE | {409: documented(f"Another entity still refers to this {kind}.")},
    )
    async def delete(
        name: name_path, store: StoreDep, actor: ActorDep, override: OverrideDep
    ) -> Response:
        revision = await run_in_threadpool(
            store.delete, kind, name, actor, override_reason=override
        )
        return Response(status_code=204, headers={REVISION_HEADER: str(revision)})

    return router
