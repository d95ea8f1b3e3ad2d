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
from pydantic import ValidationError

from turnout.models.errors import Conflict, NotConfigured, NotFound, StoreUnavailable
from turnout.models.freeze import Frozen

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


def _body(exc: Exception) -> dict[str, Any]:
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
    return JSONResponse(jsonable_encoder(_body(exc)), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    for exc_class in ERROR_STATUS:
        app.add_exception_handler(exc_class, _handle)
