"""Property: the cache's `Store.advance` (the declaration moved on by the changes a
commit carries, never read back) equals what the database holds.

Over a random sequence of real writes through `Store` (create, replace, modify,
delete, bulk apply, keys created and revoked, refused writes), the declaration
advanced commit by commit, or several commits at once, equals a full `load()`
and `load_since()`, and an entity no change named is still the very same object
(what `turnout.xds.memo`'s identity diff relies on). Field values are chosen to
normalise on validation (host case, a trailing slash, repeated tags) so a spec
that reads back differently from what the writer passed would show here.
"""

import contextlib
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from turnout.models.change import Commit
from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import NotFound, TurnoutError
from turnout.models.key import KeyCreate
from turnout.models.route import RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec
from turnout.storage.store import Store

SECRET = "advance-property-secret-0123456789"
SERVICES = ("s0", "s1", "s2")
ROUTES = ("r0", "r1", "r2")
CONSUMERS = ("c0", "c1")
EVERYTHING_EMPTY: dict[str, dict[str, BaseModel]] = {e.plural: {} for e in ENTITIES.values()}


def _service(name: str, variant: int) -> ServiceSpec:
    url = ("http://S.Internal:8080", "https://s.internal", "http://10.0.0.5:81/")[variant % 3]
    tags = ["t"] * (variant % 3)
    return ServiceSpec.model_validate(
        {"name": name, "url": url, "connect_timeout_ms": 100 + variant, "tags": tags}
    )


def _route(name: str, service: str, variant: int) -> RouteSpec:
    data: dict[str, Any] = {
        "name": name,
        "service": service,
        "paths": [f"/{name}", {"exact": "/health"}][: 1 + variant % 2],
        "methods": [["GET"], ["GET", "POST"], []][variant % 3],
        "hosts": [[], ["A.example.com"], ["*.example.com"]][variant % 3],
        "priority": variant % 4,
    }
    if variant % 4 == 3:  # names a consumer that may not exist: then refused
        data["auth"] = {"allow_groups": ["paid"], "allow_consumers": ["c1"]}
    return RouteSpec.model_validate(data)


def _consumer(name: str, variant: int) -> ConsumerSpec:
    groups = [[], ["paid"], ["paid", "free"]][variant % 3]
    return ConsumerSpec.model_validate({"name": name, "groups": groups})


def _split(route: str, a: str, b: str, weight: int) -> SplitSpec:
    targets = [{"service": a, "weight": weight}, {"service": b, "weight": 100 - weight}]
    return SplitSpec.model_validate({"name": f"{route}-split", "route": route, "targets": targets})


@dataclass(frozen=True)
class Write:
    op: str
    a: int
    b: int
    variant: int


WRITES = st.builds(
    Write,
    op=st.sampled_from(
        (
            *("service", "service", "route", "route", "split", "consumer"),
            *("modify", "delete", "delete_split", "key", "revoke", "apply", "advance"),
        )
    ),
    a=st.integers(0, 2),
    b=st.integers(0, 2),
    variant=st.integers(0, 11),
)


def _write(store: Store, w: Write) -> None:
    """One write (it may be refused: a dangling reference, a missing name)."""
    s, r, c = SERVICES[w.a], ROUTES[w.a], CONSUMERS[w.a % 2]

    def upsert(kind: str, spec: BaseModel) -> None:
        name: str = spec.name  # type: ignore[attr-defined]
        try:
            store.get(kind, name)
        except NotFound:
            store.create(kind, spec, "p")
        else:
            store.replace(kind, name, spec, "p")

    if w.op == "service":
        upsert("service", _service(s, w.variant))
    elif w.op == "route":
        upsert("route", _route(r, SERVICES[w.b], w.variant))
    elif w.op == "split":
        upsert("split", _split(r, SERVICES[w.b], SERVICES[(w.b + 1) % 3], 10 * (w.variant % 10)))
    elif w.op == "consumer":
        upsert("consumer", _consumer(c, w.variant))
    elif w.op == "modify":
        slower = {"connect_timeout_ms": 7}
        store.modify("service", s, lambda spec: spec.model_copy(update=slower), "p")
    elif w.op == "delete":
        kind = ("service", "route", "consumer")[w.b]
        store.delete(kind, (s, r, c)[w.b], "p")
    elif w.op == "delete_split":
        store.delete("split", f"{r}-split", "p")
    elif w.op == "key":
        store.keys.of(c).create(KeyCreate(), "p")
    elif w.op == "revoke":
        keys = store.keys.of(c)
        infos = keys.list()
        if infos:
            keys.delete(infos[w.variant % len(infos)].id, "p")
    elif w.op == "apply":
        # One revision: a service and a route rewritten, a consumer dropped (keys too).
        now = store.load()
        target = {e.plural: dict(getattr(now, e.plural)) for e in ENTITIES.values()}
        target["services"][s] = _service(s, w.variant + 1)
        if r in target["routes"]:
            target["routes"][r] = _route(r, SERVICES[w.b], w.variant + 1)
        target["consumers"].pop(c, None)
        store.apply(target, "p", delete_keys=True)


def _assert_advanced(
    store: Store, before: Declaration, after: Declaration, commits: list[Commit]
) -> None:
    loaded = store.load()
    assert after == loaded
    assert store.load_since(before) == loaded
    named = {(c.kind, c.name) for commit in commits for c in commit.changes or ()}
    for ent in ENTITIES.values():
        for name, spec in getattr(after, ent.plural).items():
            if (ent.kind, name) not in named and name in getattr(before, ent.plural):
                assert spec is getattr(before, ent.plural)[name], (ent.kind, name)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(writes=st.lists(WRITES, min_size=1, max_size=30))
def test_advance_equals_what_the_database_holds(database_url: str, writes: list[Write]) -> None:
    store = Store(database_url, secret_key=SECRET)
    commits: list[Commit] = []
    unsubscribe = store.commits.subscribe(commits.append)
    try:
        # One database for every example: start each from nothing, in one revision.
        store.apply(EVERYTHING_EMPTY, "p", delete_keys=True)
        decl = store.load()
        commits.clear()
        pending: list[Commit] = []
        for w in writes:
            if w.op != "advance":
                with contextlib.suppress(TurnoutError):  # refused: then it publishes nothing
                    _write(store, w)
                pending += commits
                commits.clear()
                if w.variant % 3:  # sometimes let several commits pile up
                    continue
            after = store.advance(decl, pending)
            _assert_advanced(store, decl, after, pending)
            decl, pending = after, []
        after = store.advance(decl, pending)
        _assert_advanced(store, decl, after, pending)
    finally:
        unsubscribe()
        store.close()
