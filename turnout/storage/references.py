"""Rules that span entities, checked inside the store's write transaction.

A spec validates itself; whether the service a route names exists can only be
answered against the database, under the store's write lock so that no other
writer can change the answer before commit. Each violation is a `Conflict` that
names the offending field.
"""

from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, bindparam, delete, exists, select
from sqlalchemy.orm import Session

from turnout.models.consumer import ConsumerRow, ConsumerSpec
from turnout.models.entities import Entity
from turnout.models.errors import Conflict
from turnout.models.key import ConsumerKeyRow
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


def delete_dependents(session: Session, ent: Entity, name: str) -> None:
    """Delete what belongs to the entity being deleted (a consumer's API keys)."""
    if ent.kind == "consumer":
        session.execute(delete(ConsumerKeyRow).where(ConsumerKeyRow.consumer == name))


def _exists(session: Session, row: type[Any], name: str) -> bool:
    """A Core EXISTS, not `Session.get`: no ORM object built for a yes/no (issue 17)."""
    return bool(session.scalar(_exists_statement(row), {"b_name": name}))


@cache
def _exists_statement(row: type[Any]) -> Select[Any]:
    # Built once per row class: building costs more than executing (issue 17).
    return select(exists().where(row.name == bindparam("b_name")))


_SPLIT_OF_ROUTE = select(SplitRow).where(SplitRow.route == bindparam("b_route"))
_OTHER_SPLIT_OF_ROUTE = select(SplitRow.name).where(
    SplitRow.route == bindparam("b_route"), SplitRow.name != bindparam("b_name")
)


def _service_exists(session: Session, name: str) -> bool:
    return _exists(session, ServiceRow, name)


def _check_route(session: Session, spec: BaseModel) -> None:
    assert isinstance(spec, RouteSpec)
    if not _service_exists(session, spec.service):
        raise Conflict(f"service {spec.service!r} does not exist", field="service")
    _check_route_auth_kept(session, spec)
    if spec.auth is None:
        return
    for consumer in spec.auth.allow_consumers:
        if not _exists(session, ConsumerRow, consumer):
            raise Conflict(f"consumer {consumer!r} does not exist", field="auth.allow_consumers")
    known = _groups(session)
    for group in spec.auth.allow_groups:
        if group not in known:
            raise Conflict(
                f"consumer group {group!r} does not exist: no consumer is in it",
                field="auth.allow_groups",
            )


def _groups(session: Session, without: str | None = None) -> set[str]:
    """Every group some consumer (other than `without`) is in."""
    return {
        group
        for row in session.scalars(select(ConsumerRow))
        if row.name != without
        for group in row.groups
    }


def _route_auth_users(session: Session) -> list[tuple[str, list[str], list[str]]]:
    """(route, allowed consumers, allowed groups) of every route with auth."""
    return [
        (row.name, row.auth.get("allow_consumers", []), row.auth.get("allow_groups", []))
        for row in session.scalars(select(RouteRow).order_by(RouteRow.name))
        if row.auth
    ]


def _check_groups_still_used(session: Session, groups_left: set[str], field: str | None) -> None:
    for route, _consumers, groups in _route_auth_users(session):
        for group in groups:
            if group not in groups_left:
                raise Conflict(
                    f"route {route!r} allows consumer group {group!r}, which would have no "
                    "consumer left; change the route first",
                    field=field,
                )


def _check_consumer(session: Session, spec: BaseModel) -> None:
    assert isinstance(spec, ConsumerSpec)
    row = session.get(ConsumerRow, spec.name)
    if row is None or set(row.groups) <= set(spec.groups):
        # It leaves no group, so no group can lose its last member; skipping the
        # scan of every consumer keeps a bulk import (10,000 consumers) linear.
        return
    _check_groups_still_used(
        session, _groups(session, without=spec.name) | set(spec.groups), "groups"
    )


def _check_consumer_delete(session: Session, name: str) -> None:
    for route, consumers, _ in _route_auth_users(session):
        if name in consumers:
            raise Conflict(f"consumer {name!r} is still allowed by route {route!r}")
    _check_groups_still_used(session, _groups(session, without=name), None)


def _check_split(session: Session, spec: BaseModel) -> None:
    assert isinstance(spec, SplitSpec)
    if not _exists(session, RouteRow, spec.route):
        raise Conflict(f"route {spec.route!r} does not exist", field="route")
    other = session.scalars(
        _OTHER_SPLIT_OF_ROUTE, {"b_route": spec.route, "b_name": spec.name}
    ).first()
    if other is not None:
        raise Conflict(
            f"route {spec.route!r} already has split {other!r}; a route has at most one split",
            field="route",
        )
    _check_sticky_consumer(session, spec)
    for i, target in enumerate(spec.targets):
        if not _service_exists(session, target.service):
            raise Conflict(
                f"service {target.service!r} does not exist", field=f"targets[{i}].service"
            )


def _consumer_fields(spec: SplitSpec) -> list[str]:
    """The fields of `spec` that use the authenticated consumer (need the route's auth)."""
    fields = [f"pins[{i}].consumer" for i, pin in enumerate(spec.pins) if pin.consumer]
    if spec.sticky is not None and spec.sticky.consumer:
        fields.append("sticky.consumer")
    return fields


def _check_sticky_consumer(session: Session, spec: SplitSpec) -> None:
    """Sticky or pinned by consumer reads the header `auth` sets: no auth, no consumer."""
    fields = _consumer_fields(spec)
    if not fields:
        return
    route = session.get(RouteRow, spec.route)
    if route is not None and not (route.auth or {}).get("required", False):
        raise Conflict(
            f"{fields[0]} needs route {spec.route!r} to have `auth` with required: true "
            "(the consumer is known only on authenticated routes)",
            field=fields[0],
        )
    for i, pin in enumerate(spec.pins):
        if pin.consumer and not _exists(session, ConsumerRow, pin.consumer):
            raise Conflict(f"consumer {pin.consumer!r} does not exist", field=f"pins[{i}].consumer")


def _check_route_auth_kept(session: Session, spec: RouteSpec) -> None:
    """A route whose split is sticky or pinned by consumer must keep its `auth`."""
    if spec.auth is not None and spec.auth.required:
        return
    row = session.scalars(_SPLIT_OF_ROUTE, {"b_route": spec.name}).first()
    split = (
        None
        if row is None
        else SplitSpec.model_validate({n: getattr(row, n) for n in SplitSpec.model_fields})
    )
    if row is not None and split is not None and _consumer_fields(split):
        raise Conflict(
            f"split {row.name!r} uses the consumer: route {spec.name!r} needs `auth` "
            "with required: true",
            field="auth",
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
    "consumer": _check_consumer,
    "route": _check_route,
    "split": _check_split,
}
_DELETE_CHECKS: dict[str, Callable[[Session, str], None]] = {
    "consumer": _check_consumer_delete,
    "service": _check_service_delete,
    "route": _check_route_delete,
}
