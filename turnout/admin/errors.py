"""Exceptions to HTTP responses, in exactly one table (like Kong's ERRORS_HTTP_CODES).

Bodies:
- `{"detail": "<message>"}` for every mapped error,
- plus `"field"` (the offending field, or null) for `Conflict`,
- plus `"freeze"` (the freeze in force) for `Frozen` (423),
- `{"detail": [{"loc": [...], "msg": ..., "type": ...}]}` for a pydantic
  `ValidationError`, the same shape FastAPI uses for request validation.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from turnout.models.errors import Conflict, NotConfigured, NotFound, StoreUnavailable
from turnout.models.freeze import Freeze, Frozen

ERROR_STATUS: dict[type[Exception], int] = {
    NotFound: 404,
    Conflict: 409,
    Frozen: 423,
    StoreUnavailable: 503,
    NotConfigured: 503,
    ValidationError: 422,
}


def validation_errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic errors as JSON-ready dicts, each `loc` prefixed (e.g. with "body")."""
    return [
        {"type": e["type"], "loc": [*prefix, *e["loc"]], "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def request_validation_error(exc: ValidationError) -> RequestValidationError:
    """Re-raise a body validated by hand exactly as FastAPI reports a request body."""
    return RequestValidationError(validation_errors(exc, ("body",)))


def error_body(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        return {"detail": validation_errors(exc)}
    body: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, Conflict):
        body["field"] = exc.field
    if isinstance(exc, Frozen):
        body["freeze"] = exc.freeze.model_dump(mode="json")
    return body


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    status = next(ERROR_STATUS[c] for c in type(exc).__mro__ if c in ERROR_STATUS)
    return JSONResponse(jsonable_encoder(error_body(exc)), status_code=status)


class FieldError(BaseModel):
    type: str
    loc: list[str | int] = Field(description='Where, e.g. ["body", "targets", 0, "weight"].')
    msg: str


class ErrorBody(BaseModel):
    """Every error the admin API answers (4xx, 503)."""

    detail: str | list[FieldError] = Field(
        description="The reason; for 422 one entry per offending field."
    )
    field: str | None = Field(None, description="409: the field in conflict, if one.")
    freeze: Freeze | None = Field(None, description="423: the freeze in force.")


def documented(description: str) -> dict[str, Any]:
    """An error answer for `responses=`, with the error body model."""
    return {"model": ErrorBody, "description": description}


Responses = dict[int | str, dict[str, Any]]

WHY: dict[int, str] = {
    400: "The body cannot be read at all (not UTF-8 JSON); nothing changed.",
    401: "No bearer token, or an unknown, revoked or expired one.",
    403: "The token's role is below what this call needs (`detail` names it), or a "
    "token below admin sent X-Turnout-Override-Reason.",
    404: "An unknown name or id in the path.",
    409: "A duplicate name or a broken reference; `field` names it; nothing changed.",
    422: "A parameter or field is invalid; `detail` names each and the reason; nothing changed.",
    423: "A freeze covers the entity; `freeze` names it; nothing changed (an admin may "
    "pass one request with X-Turnout-Override-Reason).",
    503: "The database cannot be reached, or (writes) too many writes wait for it: "
    "retry after `Retry-After`; nothing changed.",
}
"""What each error status means, wherever an operation can answer it."""


def errors(*statuses: int) -> Responses:
    """`responses=` for these statuses, each with its meaning (WHY) and ErrorBody."""
    return {status: documented(WHY[status]) for status in statuses}


# The error answers by kind of operation, declared once. An operation's own
# `responses=` adds to its router's, and a status given again says it more precisely.
AUTHENTICATED = errors(401, 403, 503)
"""Every operation behind the token (router level, `create_app`): the guard answers
401/403 before anything else, and reads tokens from the database (503)."""
PARAMS = errors(422)
"""Reads with path or query parameters (FastAPI would otherwise document its own
422 body, not ErrorBody)."""
LOOKUP = errors(404, 422)
"""Reads of one thing named in the path."""
CREATE = errors(400, 409, 422, 423)
"""Writes with a body that a freeze can hold."""
CHANGE = errors(400, 404, 409, 422, 423)
"""Writes with a body to a thing named in the path, that a freeze can hold."""
REMOVE = errors(404, 409, 422, 423)
"""Deletes a freeze can hold (422: the override header's length)."""
UNGATED_CREATE = errors(400, 409, 422)
"""Writes with a body that no freeze holds (freezes and tokens themselves)."""


def install_error_handlers(app: FastAPI) -> None:
    for exc_class in ERROR_STATUS:
        app.add_exception_handler(exc_class, _handle)
