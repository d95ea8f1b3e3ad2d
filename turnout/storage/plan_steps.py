"""Taking one plan step on a stored split: shared by the plan endpoints and the controller.

The transition is computed from the split as read INSIDE the write transaction
(`Store.modify`), so a controller step and an operator's pause cannot overwrite
each other. A rollback is exempt from freezes: returning traffic to the baseline
must always be possible.
"""

from datetime import datetime

from pydantic import BaseModel

from turnout.models.freeze import Freeze, now
from turnout.models.plan import PlanAction, PlanError, PlanState, percent, transition, weights
from turnout.models.split import SplitSpec, SplitTarget
from turnout.storage.freezes import covers
from turnout.storage.store import Store

CONTROLLER_ACTOR = "controller"


def step_split(
    store: Store,
    name: str,
    action: PlanAction,
    actor: str,
    reason: str,
    *,
    at: datetime | None = None,
    expect: PlanState | None = None,
    override_reason: str | None = None,
) -> tuple[SplitSpec, int]:
    """Apply `action` to split `name`'s plan; the new split and its revision.

    `expect` (the controller's): refuse with `PlanError` if the plan moved since it
    was judged, so a decision is never applied to a state it was not made on. `at`
    (tests' fixed clocks): when the step starts; by default, when it is written.
    """
    route_service = _route_service(store, name) if action is PlanAction.ROLLBACK else None

    def change(current: BaseModel) -> BaseModel:
        assert isinstance(current, SplitSpec)
        if current.plan is None:
            return _rollback_without_plan(current, action, route_service)
        state = current.plan_state or PlanState()
        if expect is not None and state != expect:
            raise PlanError(f"split {name!r}'s plan changed meanwhile")
        # Read under the write lock: the step starts when it is written, however long
        # the write waited for the lock, so the next hold is never shorter than it says.
        new_state = transition(current.plan, state, action, at or now(), reason)
        update: dict[str, object] = {"plan_state": new_state}
        if action not in (PlanAction.PAUSE, PlanAction.RESUME):
            split = weights(current.plan, percent(current.plan, new_state))
            update["targets"] = [SplitTarget(service=s, weight=w) for s, w in sorted(split.items())]
        return SplitSpec.model_validate({**current.model_dump(), **update})

    spec, revision = store.modify(
        "split",
        name,
        change,
        actor,
        reason=f"{action.value}: {reason}",
        override_reason=override_reason,
        freeze_exempt=action is PlanAction.ROLLBACK,
    )
    assert isinstance(spec, SplitSpec)
    return spec, revision


def _route_service(store: Store, split_name: str) -> str | None:
    split = store.get("split", split_name)
    assert isinstance(split, SplitSpec)
    route = store.get("route", split.route)
    return getattr(route, "service", None)


def _rollback_without_plan(
    current: SplitSpec, action: PlanAction, route_service: str | None
) -> SplitSpec:
    """A split without a plan can still be rolled back: all traffic to its route's own
    service (what deleting the split would do), if that service is one of its targets."""
    if action is not PlanAction.ROLLBACK:
        raise PlanError(f"split {current.name!r} has no plan")
    services = [t.service for t in current.targets]
    if route_service not in services:
        raise PlanError(
            f"split {current.name!r} has no plan and its route's service {route_service!r} "
            "is not a target: nothing to roll back to"
        )
    targets = [SplitTarget(service=s, weight=1 if s == route_service else 0) for s in services]
    return current.model_copy(update={"targets": targets})


def holding_freezes(freezes: list[Freeze], split: SplitSpec, at: datetime) -> list[int]:
    """Ids of the freezes in force at `at` that refuse a step of `split` (not a rollback)."""
    entity = split.model_dump(mode="json")
    return [f.id for f in freezes if f.active(at) and covers(f.scope, "split", entity)]
