"""Driving a migration: `split set`, `plan ...`, `freeze ...`, `revisions ...`,
`proxies` and `status`, each a call (or two) to the admin API."""

from datetime import UTC, datetime, timedelta
from typing import Any

import click

from turnout.cli.client import EXIT_USAGE, CliError
from turnout.cli.output import emit, field, output_option
from turnout.cli.resources import KINDS

MAX_TARGETS = 16
"""As the split's own bound (`targets`: at most 16)."""
MAX_SCOPE = 256
"""As the freeze scope's bound (services, routes: at most 256 each)."""


def _api(ctx: click.Context) -> Any:
    from turnout.cli.app import api

    return api(ctx)


def parse_targets(pairs: tuple[str, ...]) -> list[dict[str, Any]]:
    """`orders-v1=90 orders-v2=10` → [{"service": "orders-v1", "weight": 90}, ...]."""
    if len(pairs) > MAX_TARGETS:
        raise CliError(f"at most {MAX_TARGETS} targets, got {len(pairs)}", EXIT_USAGE)
    targets = []
    for pair in pairs:
        service, eq, weight = pair.partition("=")
        if not eq or not service or not weight.isdigit():
            raise CliError(
                f"target {pair!r}: expected SERVICE=WEIGHT (a whole number, e.g. orders-v2=10)",
                EXIT_USAGE,
            )
        targets.append({"service": service, "weight": int(weight)})
    return targets


@click.group(
    "split",
    epilog="""\b
examples:
  turnout split set checkout orders-legacy=90 orders-v2=10
  turnout get splits""",
)
def split_group() -> None:
    """Set a split's weights (reads: `turnout get splits`)."""


@split_group.command(
    "set",
    epilog="""\b
examples:
  turnout split set checkout orders-legacy=90 orders-v2=10
  turnout split set checkout orders-v2=1 -o json""",
)
@click.argument("name")
@click.argument("targets", metavar="SERVICE=WEIGHT...", nargs=-1, required=True)
@output_option()
@click.pass_context
def split_set(ctx: click.Context, name: str, targets: tuple[str, ...], output: str) -> None:
    """Replace the targets of split NAME with these weights (PATCH /splits/NAME)."""
    answer = _api(ctx).call("PATCH", f"/splits/{name}", json={"targets": parse_targets(targets)})
    click.echo(f"split {name} set{answer.revision_note}", err=True)
    if output != "table":
        emit(answer.body, output)


@click.group(
    "plan",
    epilog="""\b
examples:
  turnout plan start checkout --baseline orders-legacy --target orders-v2 --hold 300
  turnout plan status checkout
  turnout plan advance checkout --reason "looks good"
  turnout plan rollback checkout --reason "5xx on orders-v2"  # never frozen""",
)
def plan_group() -> None:
    """A split's staged plan: start, advance, pause, resume, promote, rollback, status."""


def _plan_view(view: dict[str, Any], output: str) -> None:
    if output != "table":
        emit(view, output)
        return
    state = view.get("plan_state") or {}
    status = view.get("plan_status") or {}
    row = {
        "split": view.get("name"),
        "status": state.get("status", "pending"),
        "percent": status.get("percent"),
        "next": status.get("next_percent"),
        "next_step_due": status.get("next_step_due"),
        "waiting": status.get("waiting"),
        "reason": state.get("reason"),
    }
    emit(row, "table", [(k, field(k)) for k in row], [row])


def _action(ctx: click.Context, name: str, action: str, reason: str, override: str | None) -> Any:
    headers = {"X-Turnout-Override-Reason": override} if override else None
    answer = _api(ctx).call(
        "POST", f"/splits/{name}/{action}", json={"reason": reason}, headers=headers
    )
    status = (answer.body.get("plan_state") or {}).get("status", "")
    click.echo(f"split {name}: {action} done, plan {status}{answer.revision_note}", err=True)
    return answer.body


_reason = click.option("--reason", default="", help="recorded in the audit event")
_override = click.option(
    "--override-freeze",
    metavar="REASON",
    help="write through an active freeze for this one call (admin role; audited)",
)


@plan_group.command(
    "start",
    epilog="""\b
examples:
  turnout plan start checkout --baseline orders-legacy --target orders-v2
  turnout plan start checkout --baseline orders-legacy --target orders-v2 \\
      --steps 5,25,50,100 --hold 600 --max-error-rate 0.01 --min-requests 200
  turnout plan start checkout      # the split already has a plan: take its first step""",
)
@click.argument("name")
@click.option("--baseline", metavar="SERVICE", help="the service traffic moves away from")
@click.option("--target", metavar="SERVICE", help="the service being introduced")
@click.option("--steps", metavar="P,P,...", help="percent on the target at each step")
@click.option("--hold", "hold_seconds", type=float, help="seconds each step holds (default 300)")
@click.option("--max-error-rate", type=float, help="criteria: the target's highest error rate")
@click.option("--min-requests", type=int, help="criteria: target requests before judging")
@_reason
@_override
@output_option()
@click.pass_context
def plan_start(
    ctx: click.Context,
    name: str,
    baseline: str | None,
    target: str | None,
    steps: str | None,
    hold_seconds: float | None,
    max_error_rate: float | None,
    min_requests: int | None,
    reason: str,
    override_freeze: str | None,
    output: str,
) -> None:
    """Give split NAME a plan (with --baseline/--target) and take its first step."""
    if (baseline is None) != (target is None):
        raise CliError("plan start: --baseline and --target go together", EXIT_USAGE)
    if baseline is not None and target is not None:
        plan: dict[str, Any] = {"baseline": baseline, "target": target}
        if steps:
            try:
                plan["steps"] = [float(s) for s in steps.split(",")]
            except ValueError:
                raise CliError(f"--steps {steps!r}: expected numbers like 1,10,50,100") from None
        if hold_seconds is not None:
            plan["hold_seconds"] = hold_seconds
        criteria = {
            k: v
            for k, v in (("max_error_rate", max_error_rate), ("min_requests", min_requests))
            if v is not None
        }
        if criteria:
            plan["criteria"] = criteria
        current = _api(ctx).get(f"/splits/{name}")
        weights = {t["service"]: t["weight"] for t in current.get("targets", [])}
        body: dict[str, Any] = {"plan": plan, "plan_state": None}
        if set(weights) != {baseline, target}:
            # A plan's split has exactly its two services; start all on the baseline.
            body["targets"] = [
                {"service": baseline, "weight": 100},
                {"service": target, "weight": 0},
            ]
        headers = {"X-Turnout-Override-Reason": override_freeze} if override_freeze else None
        answer = _api(ctx).call("PATCH", f"/splits/{name}", json=body, headers=headers)
        click.echo(f"split {name}: plan set{answer.revision_note}", err=True)
    view = _action(ctx, name, "advance", reason or "plan start", override_freeze)
    _plan_view(view, output)


def _action_command(action: str, doc: str, example: str) -> click.Command:
    @click.argument("name")
    @_reason
    @_override
    @output_option()
    @click.pass_context
    def run(
        ctx: click.Context, name: str, reason: str, override_freeze: str | None, output: str
    ) -> None:
        _plan_view(_action(ctx, name, action, reason, override_freeze), output)

    run.__doc__ = doc
    return click.command(action, epilog=f"\b\nexamples:\n  {example}")(run)


for _name, _doc, _example in (
    ("advance", "Move the plan of split NAME one step on now.", "turnout plan advance checkout"),
    ("pause", "Pause the plan (the controller leaves it alone).", "turnout plan pause checkout"),
    ("resume", "Resume a paused plan (the hold starts again).", "turnout plan resume checkout"),
    (
        "promote",
        "Send all traffic to the plan's target now.",
        'turnout plan promote checkout --reason "v2 verified"',
    ),
    (
        "rollback",
        "Send all traffic back to the baseline now (never frozen).",
        'turnout plan rollback checkout --reason "5xx on orders-v2"',
    ),
):
    plan_group.add_command(_action_command(_name, _doc, _example))


@plan_group.command(
    "status",
    epilog="""\b
examples:
  turnout plan status checkout
  turnout plan status checkout -o json | jq .plan_status.waiting""",
)
@click.argument("name")
@output_option()
@click.pass_context
def plan_status(ctx: click.Context, name: str, output: str) -> None:
    """Where the plan of split NAME is: percent, next step, what it waits for."""
    view = _api(ctx).get(f"/splits/{name}")
    if not view.get("plan"):
        raise CliError(f"split {name!r} has no plan (`turnout plan start {name} ...`)")
    _plan_view(view, output)


@click.group(
    "freeze",
    epilog="""\b
examples:
  turnout freeze start --route checkout --reason "black friday" --for 2h
  turnout freeze list
  turnout freeze end 3""",
)
def freeze_group() -> None:
    """Freezes: while one is active, writes it covers answer 423 (exit code 3)."""


def _duration(text: str) -> timedelta:
    from turnout.models.token import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CliError(f"--for {text!r}: {exc}", EXIT_USAGE) from None


@freeze_group.command(
    "start",
    epilog="""\b
examples:
  turnout freeze start --all --reason "release freeze"
  turnout freeze start --route checkout --service orders-v2 --reason incident-42 --for 2h
  turnout freeze start --tag payments --reason audit --ends-at 2026-12-24T00:00:00Z""",
)
@click.option("--all", "everything", is_flag=True, help="freeze the whole declaration")
@click.option("--service", "services", multiple=True, metavar="NAME", help="repeatable")
@click.option("--route", "routes", multiple=True, metavar="NAME", help="repeatable")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="repeatable")
@click.option("--reason", required=True, help="why (shown in every 423 it causes)")
@click.option("--for", "for_", metavar="DURATION", help="ends by itself after 15m, 2h, 1d")
@click.option("--starts-at", metavar="TIME", help="ISO time with zone (default: now)")
@click.option("--ends-at", metavar="TIME", help="ISO time with zone (default: when lifted)")
@output_option()
@click.pass_context
def freeze_start(
    ctx: click.Context,
    everything: bool,
    services: tuple[str, ...],
    routes: tuple[str, ...],
    tags: tuple[str, ...],
    reason: str,
    for_: str | None,
    starts_at: str | None,
    ends_at: str | None,
    output: str,
) -> None:
    """Declare a freeze over everything (--all) or some services, routes, tags."""
    if max(len(services), len(routes), len(tags)) > MAX_SCOPE:
        raise CliError(f"at most {MAX_SCOPE} of each of --service/--route/--tag", EXIT_USAGE)
    if for_ and ends_at:
        raise CliError("--for and --ends-at: give one", EXIT_USAGE)
    scope: dict[str, Any] = {"all": True} if everything else {}
    for key, values in (("services", services), ("routes", routes), ("tags", tags)):
        if values:
            scope[key] = list(values)
    body: dict[str, Any] = {"reason": reason, "scope": scope}
    if starts_at:
        body["starts_at"] = starts_at
    if for_:
        body["ends_at"] = (datetime.now(UTC) + _duration(for_)).isoformat()
    elif ends_at:
        body["ends_at"] = ends_at
    answer = _api(ctx).call("POST", "/freezes", json=body)
    click.echo(f"freeze {answer.body['id']} {answer.body['state']}", err=True)
    k = KINDS["freezes"]
    emit(answer.body, output, k.columns, [answer.body])


@freeze_group.command(
    "end",
    epilog="""\b
examples:
  turnout freeze end 3
  turnout freeze end 3 4""",
)
@click.argument("ids", metavar="ID...", nargs=-1, required=True, type=int)
@click.pass_context
def freeze_end(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Lift freezes by id (lifting twice is harmless)."""
    for freeze_id in ids:
        _api(ctx).call("DELETE", f"/freezes/{freeze_id}")
        click.echo(f"freeze {freeze_id} lifted", err=True)


@freeze_group.command(
    "list",
    epilog="""\b
examples:
  turnout freeze list
  turnout freeze list --active -o json""",
)
@click.option("--active", is_flag=True, help="only the freezes in force now")
@output_option()
@click.pass_context
def freeze_list(ctx: click.Context, active: bool, output: str) -> None:
    """List freezes with their state (scheduled, active, ended, lifted)."""
    body = _api(ctx).get("/freezes")
    if active:
        body = {"items": [f for f in body["items"] if f.get("state") == "active"]}
    emit(body, output, KINDS["freezes"].columns, body["items"])


@click.group(
    "revisions",
    epilog="""\b
examples:
  turnout revisions list --limit 10
  turnout revisions diff 4 7
  turnout revisions restore 4 --reason "back to before the import\"""",
)
def revisions_group() -> None:
    """The declaration's history: list, diff two revisions, restore one."""


@revisions_group.command("list", epilog="\b\nexamples:\n  turnout revisions list --limit 5 -o json")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--before", type=click.IntRange(1), help="only revisions below this")
@output_option()
@click.pass_context
def revisions_list(ctx: click.Context, limit: int, before: int | None, output: str) -> None:
    """Revisions, newest first: who, when, what, why."""
    body = _api(ctx).get("/revisions", limit=limit, before=before)
    columns = [
        ("revision", field("number")),
        ("at", field("at")),
        ("actor", field("actor")),
        ("summary", field("summary")),
        ("reason", field("reason")),
    ]
    emit(body, output, columns, body["items"])


@revisions_group.command("diff", epilog="\b\nexamples:\n  turnout revisions diff 4 7 -o json")
@click.argument("a", type=click.IntRange(0))
@click.argument("b", type=click.IntRange(0))
@output_option("yaml")
@click.pass_context
def revisions_diff(ctx: click.Context, a: int, b: int, output: str) -> None:
    """What changed from revision A to revision B (yaml by default)."""
    emit(_api(ctx).get(f"/revisions/{a}/diff/{b}"), "yaml" if output == "table" else output)


@revisions_group.command(
    "restore", epilog='\b\nexamples:\n  turnout revisions restore 4 --reason "undo the import"'
)
@click.argument("n", type=click.IntRange(0))
@_reason
@click.option("--delete-keys", is_flag=True, help="allow deleting consumers that have API keys")
@_override
@click.pass_context
def revisions_restore(
    ctx: click.Context, n: int, reason: str, delete_keys: bool, override_freeze: str | None
) -> None:
    """Make a new revision equal to revision N (admin role; freezes apply)."""
    headers = {"X-Turnout-Override-Reason": override_freeze} if override_freeze else None
    answer = _api(ctx).call(
        "POST",
        f"/revisions/{n}/restore",
        json={"reason": reason},
        params={"delete_keys": "true" if delete_keys else None},
        headers=headers,
    )
    for change in answer.body.get("changes", []):
        click.echo(change)
    click.echo(f"revision {answer.body['revision']}: restored revision {n}", err=True)


def sync_state(proxy: dict[str, Any]) -> str:
    """One word per proxy: NACKED if any type is, else STALE if any is, else SYNCED."""
    states = {t.get("state") for t in proxy.get("types", [])}
    return next((s for s in ("NACKED", "STALE") if s in states), "SYNCED")


PROXY_COLUMNS = [
    ("node", field("node_id")),
    ("cluster", field("node_cluster")),
    ("state", sync_state),
    ("revision", field("revision")),
    ("xds", field("xds")),
    ("connected_since", field("connected_since")),
    ("quarantined", lambda p: len(p.get("quarantined") or []) or None),
]


@click.command(
    "proxies",
    epilog="""\b
examples:
  turnout proxies
  turnout proxies edge-1 -o yaml""",
)
@click.argument("node_id", required=False)
@output_option()
@click.pass_context
def proxies_cmd(ctx: click.Context, node_id: str | None, output: str) -> None:
    """Connected Envoys: sync state per proxy and the revision each runs."""
    if node_id:
        proxy = _api(ctx).get(f"/proxies/{node_id}")
        emit(proxy, output, PROXY_COLUMNS, [proxy])
        return
    proxies = _api(ctx).get("/proxies")
    emit(proxies, output, PROXY_COLUMNS, proxies)


@click.command(
    "status",
    epilog="""\b
examples:
  turnout status
  turnout status -o json | jq '.proxies[] | select(.state != "SYNCED")'""",
)
@output_option()
@click.pass_context
def status_cmd(ctx: click.Context, output: str) -> None:
    """The fleet at a glance: revision, proxies and their sync state, plans, freezes."""
    api = _api(ctx)
    revision = api.get("/healthz").get("revision")
    proxies = api.get("/proxies")
    splits = api.get("/splits")["items"]
    freezes = [f for f in api.get("/freezes")["items"] if f.get("state") == "active"]
    plans = [
        {
            "split": s["name"],
            "status": (s.get("plan_state") or {}).get("status", "pending"),
            "targets": {t["service"]: t["weight"] for t in s.get("targets", [])},
        }
        for s in splits
        if s.get("plan")
    ]
    summary = {
        "revision": revision,
        "proxies": [
            {
                "node_id": p["node_id"],
                "node_cluster": p["node_cluster"],
                "state": sync_state(p),
                "revision": p.get("revision"),
                "behind": revision is not None
                and p.get("revision") is not None
                and p["revision"] < revision,
            }
            for p in proxies
        ],
        "plans": plans,
        "freezes": freezes,
    }
    if output != "table":
        emit(summary, output)
        return
    synced = sum(1 for p in summary["proxies"] if p["state"] == "SYNCED")
    click.echo(f"revision {revision}; proxies {synced}/{len(proxies)} synced")
    click.echo("\nPROXIES")
    emit(
        summary["proxies"],
        "table",
        [(k, field(k)) for k in ("node_id", "node_cluster", "state", "revision", "behind")],
    )
    click.echo("\nPLANS")
    emit(
        plans,
        "table",
        [("split", field("split")), ("status", field("status")), ("targets", field("targets"))],
    )
    click.echo("\nACTIVE FREEZES")
    emit(freezes, "table", KINDS["freezes"].columns)


COMMANDS = (
    split_group,
    plan_group,
    freeze_group,
    revisions_group,
    proxies_cmd,
    status_cmd,
)
