"""Rules that span entities, checked inside the store's write transaction.

A spec validates itself; whether the service a route names exists can only be
answered against the database, under the store's write lock so that no other
writer can change the answer before commit. Each violation is a `Conflict` that
names the offending field.
"""

from collections.abc import Callable

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from turnout.models.entities import Entity
from turnout.models.errors import Conflict
from turnout.models.route import RouteRow, RouteSpec
from turnout.models.service import ServiceRow
from turnout.models.split import SplitRow, SplitSpec


def check_write(session: Session, ent: Entity, spec: BaseModel) -> None:
    """Raise `Conflict` if writing `spec` would break a reference."""
    check = _WRITE_CHECKS.get(ent.kind)
    if check is not None:
        check(session, spec)


def check_delete(session: Session, ent: Entity, name: str) -> None:
    """Raise `Conflict` if another entity still refers to the one being deleted."""
    check = _DELETE_CHECKS.get(ent.kind)
    if check is not None:
        check(session, name)


def _service_exists(session: Session, name: str) -> bool:
    return session.get(ServiceRow, name) is not None


def _check_route(session: Session, spec: BaseModel) -> None:
    assert isinstance(spec, RouteSpec)
    if not _service_exists(session, spec.service):
        raise Conflict(f"service {spec.service!r} does not exist", field="service")


def _check_split(session: Session, spec: BaseModel) -> None:
    assert isinstance(spec, SplitSpec)
    if session.get(RouteRow, spec.route) is None:
        raise Conflict(f"route {spec.route!r} does not exist", field="route")
    other = session.scalars(
        select(SplitRow.name).where(SplitRow.route == spec.route, SplitRow.name != spec.name)
    ).first()
    if other is not None:
        raise Conflict(
            f"route {spec.route!r} already has split {other!r}; a route has at most one split",
            field="route",
        )
    for i, target in enumerate(spec.targets):
        if not _service_exists(session, target.service):
            raise Conflict(
                f"service {target.service!r} does not exist", field=f"targets[{i}].service"
            )


def _check_service_delete(session: Session, name: str) -> None:
    routes = session.scalars(
        select(RouteRow.name).where(RouteRow.service == name).order_by(RouteRow.name)
    ).all()
    # Targets are a JSON list, so filter here rather than in SQL (splits are few).
    splits = [
        row.name
        for row in session.scalars(select(SplitRow).order_by(SplitRow.name))
        if any(t.get("service") == name for t in row.targets)
    ]
    users = [f"route {r!r}" for r in routes] + [f"split {s!r}" for s in splits]
    if users:
        raise Conflict(f"service {name!r} is still used by {', '.join(users)}")


def _check_route_delete(session: Session, name: str) -> None:
    split = session.scalars(select(SplitRow.name).where(SplitRow.route == name)).first()
    if split is not None:
        raise Conflict(f"route {name!r} is still used by split {split!r}; delete it first")


_WRITE_CHECKS: dict[str, Callable[[Session, BaseModel], None]] = {
    "route": _check_route,
    "split": _check_split,
}
_DELETE_CHECKS: dict[str, Callable[[Session, str], None]] = {
    "service": _check_service_delete,
    "route": _check_route_delete,
}
