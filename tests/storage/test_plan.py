"""Plan transitions, judging, and the controller on a real store and real LoadStats."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from turnout.controller import PlanController
from turnout.models.freeze import FreezeCreate, FreezeScope
from turnout.models.load_stats import Load
from turnout.models.plan import (
    PlanAction,
    PlanCriteria,
    PlanError,
    PlanState,
    PlanStatus,
    SplitPlan,
    judge,
    next_due,
    transition,
    waiting,
)
from turnout.models.split import SplitSpec
from turnout.storage.plan_steps import step_split
from turnout.storage.store import Store
from turnout.xds.lrs import LoadStats

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLAN = SplitPlan(target="orders-v2", baseline="orders", hold_seconds=10)


def test_transitions_walk_the_steps() -> None:
    state = PlanState()
    seen = []
    for _ in range(5):
        state = transition(PLAN, state, PlanAction.ADVANCE, T0, "go")
        seen.append((state.status, state.step))
    assert seen == [
        (PlanStatus.RUNNING, 0),
        (PlanStatus.RUNNING, 1),
        (PlanStatus.RUNNING, 2),
        (PlanStatus.RUNNING, 3),
        (PlanStatus.COMPLETED, 3),
    ]
    with pytest.raises(PlanError):
        transition(PLAN, state, PlanAction.ADVANCE, T0, "again")
    with pytest.raises(PlanError, match="only a running plan"):
        transition(PLAN, state, PlanAction.PAUSE, T0, "x")
    back = transition(PLAN, state, PlanAction.ROLLBACK, T0, "bad")
    assert (back.status, back.step) == (PlanStatus.ROLLED_BACK, -1)
    running = transition(PLAN, PlanState(), PlanAction.ADVANCE, T0, "go")
    assert next_due(PLAN, running) == T0 + timedelta(seconds=10)
    paused = transition(PLAN, running, PlanAction.PAUSE, T0, "look")
    assert next_due(PLAN, paused) is None
    resumed = transition(PLAN, paused, PlanAction.RESUME, T0 + timedelta(seconds=99), "ok")
    assert resumed.step_started_at == T0 + timedelta(seconds=99)


def test_judge() -> None:
    c = PlanCriteria(max_error_rate=0.05, max_ratio_vs_baseline=2, min_requests=10)
    assert judge(c, Load(requests=9, errors=9), Load()).healthy is None
    assert judge(c, Load(requests=100, errors=6), Load()).healthy is False
    assert judge(c, Load(requests=100, errors=4), Load()).healthy is True
    # 4 % against a baseline at 1 %: more than twice as bad.
    bad = judge(c, Load(requests=100, errors=4), Load(requests=100, errors=1))
    assert bad.healthy is False and "baseline" in bad.reason


def test_plan_validation() -> None:
    with pytest.raises(ValidationError, match="increase"):
        SplitPlan(target="a", baseline="b", steps=[10, 5, 100])
    with pytest.raises(ValidationError, match="last step must be 100"):
        SplitPlan(target="a", baseline="b", steps=[10, 50])
    with pytest.raises(ValidationError, match="exactly two targets"):
        SplitSpec.model_validate(
            {
                "name": "s",
                "route": "r",
                "targets": [{"service": "a", "weight": 1}],
                "plan": {"target": "x", "baseline": "a"},
            }
        )


@pytest.fixture
def planned(seeded: Store, make: Any) -> Store:
    split = make.split(orders=100, orders_v2=0).model_copy(
        update={"plan": PLAN.model_copy(update={"criteria": PlanCriteria(min_requests=10)})}
    )
    seeded.create("split", split, "alice")
    return seeded


def _weights(store: Store) -> dict[str, int]:
    split = store.get("split", "orders-canary")
    assert isinstance(split, SplitSpec)
    return {t.service: t.weight for t in split.targets}


def test_controller_advances_when_held_and_healthy(planned: Store) -> None:
    stats = LoadStats()
    controller = PlanController(planned, stats)
    step_split(planned, "orders-canary", PlanAction.ADVANCE, "alice", "start", at=T0)
    assert _weights(planned) == {"orders": 9900, "orders-v2": 100}
    assert controller.tick_once(T0 + timedelta(seconds=20)) == []  # no requests yet
    stats.record("orders-v2", 50, 0, at=T0 + timedelta(seconds=1))
    assert controller.tick_once(T0 + timedelta(seconds=5)) == []  # hold not over
    ((_, action, reason),) = controller.tick_once(T0 + timedelta(seconds=11))
    assert action is PlanAction.ADVANCE and "held 10s" in reason
    assert _weights(planned) == {"orders": 9000, "orders-v2": 1000}
    event = planned.audit(1)[0]
    assert event.actor == "controller" and event.reason is not None
    assert event.reason.startswith("advance: held 10s")


def test_controller_rolls_back_through_a_freeze(planned: Store) -> None:
    stats = LoadStats()
    step_split(planned, "orders-canary", PlanAction.ADVANCE, "alice", "start", at=T0)
    planned.freezes.create(FreezeCreate(reason="backup", scope=FreezeScope(all=True)), "ops")
    stats.record("orders-v2", 20, 10, at=T0 + timedelta(seconds=1))
    ((_, action, reason),) = PlanController(planned, stats).tick_once(T0 + timedelta(seconds=2))
    assert action is PlanAction.ROLLBACK and "50.0%" in reason
    assert _weights(planned) == {"orders": 10000, "orders-v2": 0}
    assert planned.audit(1)[0].reason == f"rollback: {reason}"


def test_waiting_says_what_holds_a_running_plan() -> None:
    plan = SplitPlan(
        target="v2", baseline="v1", hold_seconds=120, criteria=PlanCriteria(min_requests=20)
    )
    state = transition(plan, PlanState(), PlanAction.ADVANCE, T0, "start")
    few, enough, failing = Load(requests=4), Load(requests=25), Load(requests=25, errors=20)
    at = T0 + timedelta(seconds=0.5)
    assert waiting(plan, state, few, Load(), at, []) == "4/20 target requests; hold: 120 s left"
    later = T0 + timedelta(seconds=119.2)
    assert waiting(plan, state, enough, Load(), later, [3]) == "hold: 1 s left; held by freeze 3"
    due = T0 + timedelta(seconds=120)
    assert waiting(plan, state, few, Load(), due, []) == "4/20 target requests"
    assert waiting(plan, state, enough, Load(), due, [3, 5]) == "held by freeze 3, 5"
    # Nothing holds it: the controller steps at its next tick.
    assert waiting(plan, state, enough, Load(), due, []) is None
    # Failing: rolled back at the next tick (freezes never hold a rollback).
    assert waiting(plan, state, failing, Load(), at, [3]) is None
    paused = transition(plan, state, PlanAction.PAUSE, at, "wait")
    assert waiting(plan, paused, few, Load(), at, []) is None
    assert waiting(plan, PlanState(), few, Load(), at, []) is None
