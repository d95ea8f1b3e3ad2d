"""Declarative configuration: the whole declaration as one document, and back.

The document uses the admin API's schemas unchanged, one list per entity
collection, plus a format version:

    _format_version: "1"
    services: [{name: orders, url: http://orders:8080}, ...]
    routes:   [...]
    splits:   [...]

`parse_document` validates a document completely before anything is written and
reports every bad entity with its location (`splits[2].targets`); `Store.apply`
then makes the declaration equal to it in one transaction. The CLI
(`turnout dump|diff|apply`) and `POST /config` both go through here.
"""

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES

FORMAT_VERSION = "1"
FORMAT_KEY = "_format_version"


class DocumentError(ValueError):
    """A document that cannot be applied; `errors` are FastAPI-style `{loc, msg, type}`."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def to_document(decl: Declaration) -> dict[str, Any]:
    """The declaration as a document: every collection, sorted by name."""
    doc: dict[str, Any] = {FORMAT_KEY: FORMAT_VERSION}
    for ent in ENTITIES.values():
        specs: dict[str, BaseModel] = getattr(decl, ent.plural)
        doc[ent.plural] = [specs[name].model_dump(mode="json") for name in sorted(specs)]
    return doc


def dump_yaml(decl: Declaration) -> str:
    return yaml.safe_dump(to_document(decl), sort_keys=False, allow_unicode=True)


def _error(loc: list[Any], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"type": kind, "loc": loc, "msg": msg}


def parse_document(data: object) -> dict[str, dict[str, BaseModel]]:
    """Validate a whole document; entities by kind then name, or `DocumentError`."""
    if not isinstance(data, dict):
        raise DocumentError([_error([], "the document must be a mapping")])
    errors: list[dict[str, Any]] = []
    version = data.get(FORMAT_KEY)
    if str(version) != FORMAT_VERSION:
        errors.append(_error([FORMAT_KEY], f"must be {FORMAT_VERSION!r}, got {version!r}"))
    by_plural = {ent.plural: ent for ent in ENTITIES.values()}
    for key in data:
        if key != FORMAT_KEY and key not in by_plural:
            errors.append(_error([key], f"unknown collection; expected one of {sorted(by_plural)}"))
    target: dict[str, dict[str, BaseModel]] = {}
    for plural, ent in by_plural.items():
        items = data.get(plural) or []
        if not isinstance(items, list):
            errors.append(_error([plural], "must be a list"))
            continue
        specs: dict[str, BaseModel] = {}
        for i, item in enumerate(items):
            try:
                spec = ent.spec.model_validate(item)
            except ValidationError as exc:
                errors.extend(
                    _error([plural, i, *e["loc"]], e["msg"], e["type"])
                    for e in exc.errors(include_url=False, include_context=False)
                )
                continue
            name: str = spec.name  # type: ignore[attr-defined]
            if name in specs:
                errors.append(_error([plural, i, "name"], f"duplicate {ent.kind} {name!r}"))
            specs[name] = spec
        target[ent.kind] = specs
    if errors:
        raise DocumentError(errors)
    return target


def load_yaml(text: str) -> dict[str, dict[str, BaseModel]]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentError([_error([], f"not valid YAML: {exc}")]) from exc
    return parse_document(data)
