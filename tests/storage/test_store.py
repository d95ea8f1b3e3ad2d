"""The store against real databases: revisions, audit, references, atomicity."""

import threading
from typing import Any

import pytest

from turnout.models.errors import Conflict, NotFound
from turnout.storage.audit import Action
from turnout.storage.store import Store


def _unchanged(store: Store, revision: int, events: int) -> None:
    assert store.revision() == revision
    assert len(store.audit(1000)) == events


class TestWrites:
    def test_create_get_list(self, store: Store, make: Any) -> None:
        assert store.revision() == 0
        assert store.create("service", make.service("b"), "alice") == 1
        assert store.create("service", make.service("a"), "alice") == 2
        assert store.get("service", "a") == make.service("a")
        assert [s.name for s in store.list("service")] == ["a", "b"]
        assert store.listing("service")[1] == 2

    def test_each_write_bumps_revision_and_audits(self, store: Store, make: Any) -> None:
        store.create("service", make.service("orders"), "alice")
        changed = make.service("orders", connect_timeout_ms=250)
        assert store.replace("service", "orders", changed, "bob") == 2
        assert store.delete("service", "orders", "carol") == 3
        create, update, delete = reversed(store.audit())
        assert (create.revision, create.action, create.actor) == (1, Action.CREATE, "alice")
        assert create.before is None
        assert create.after == make.service("orders").model_dump(mode="json")
        assert (update.action, update.entity_kind, update.entity_name) == (
            Action.UPDATE,
            "service",
            "orders",
        )
        assert update.before is not None and update.before["connect_timeout_ms"] == 1000
        assert update.after is not None and update.after["connect_timeout_ms"] == 250
        assert (delete.action, delete.after, delete.actor) == (Action.DELETE, None, "carol")
        assert delete.before == update.after
        assert delete.at.tzinfo is not None and delete.at >= create.at

    def test_audit_limit_newest_first(self, seeded: Store) -> None:
        assert [e.revision for e in seeded.audit(limit=2)] == [3, 2]

    def test_json_fields_round_trip(self, store: Store, make: Any) -> None:
        svc = make.service(
            "multi", url=None, endpoints=[{"address": "10.0.0.1", "port": 80, "weight": 2}]
        )
        store.create("service", svc, "t")
        r = make.route(
            "r",
            service="multi",
            hosts=["*.example.com"],
            paths=["/a", {"regex": "^/v[0-9]+/"}],
            headers={"x-env": "prod"},
            methods=["GET", "POST"],
            strip_path=False,
            priority=-5,
            tags=["team:pay"],
        )
        store.create("route", r, "t")
        assert store.get("service", "multi") == svc
        assert store.get("route", "r") == r

    def test_load_is_one_revision(self, seeded: Store, make: Any) -> None:
        seeded.create("split", make.split(orders=90, orders_v2=10), "t")
        decl = seeded.load()
        assert decl.revision == 4
        assert sorted(decl.services) == ["orders", "orders-v2"]
        assert list(decl.routes) == ["orders"]
        split = decl.split_for_route("orders")
        assert split is not None and split.name == "orders-canary"

    def test_not_found(self, store: Store, make: Any) -> None:
        with pytest.raises(NotFound, match="service 'nope' does not exist"):
            store.get("service", "nope")
        with pytest.raises(NotFound):
            store.replace("service", "nope", make.service("nope"), "t")
        with pytest.raises(NotFound):
            store.delete("route", "nope", "t")
        _unchanged(store, 0, 0)

    def test_wrong_spec_type(self, store: Store, make: Any) -> None:
        with pytest.raises(TypeError, match="RouteSpec"):
            store.create("route", make.service("x"), "t")

    def test_concurrent_writers_lose_nothing(self, store: Store, make: Any) -> None:
        revisions: list[int] = []
        errors: list[BaseException] = []

        def write(i: int) -> None:
            try:
                revisions.append(store.create("service", make.service(f"s{i}"), "t"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(revisions) == list(range(1, 17))
        assert store.revision() == 16
        assert sorted(e.revision for e in store.audit()) == list(range(1, 17))


class TestConflicts:
    """Every broken rule is a Conflict naming the field, and writes nothing."""

    @pytest.mark.parametrize(
        ("kind", "spec", "field", "message"),
        [
            ("service", ("service", "orders"), "name", "service 'orders' already exists"),
            ("route", ("route", "orders"), "name", "route 'orders' already exists"),
            ("route", ("route", "r2", "ghost"), "service", "service 'ghost' does not exist"),
            ("split", ("split", "s", "ghost"), "route", "route 'ghost' does not exist"),
        ],
    )
    def test_create(
        self, seeded: Store, make: Any, kind: str, spec: tuple[Any, ...], field: str, message: str
    ) -> None:
        factory, *args = spec
        built = getattr(make, factory)(*args, **({"orders": 1} if factory == "split" else {}))
        with pytest.raises(Conflict, match=message) as info:
            seeded.create(kind, built, "t")
        assert info.value.field == field
        _unchanged(seeded, 3, 3)

    def test_split_target_unknown(self, seeded: Store, make: Any) -> None:
        with pytest.raises(Conflict, match="service 'ghost' does not exist") as info:
            seeded.create("split", make.split(orders=1, ghost=1), "t")
        assert info.value.field == "targets[1].service"
        _unchanged(seeded, 3, 3)

    def test_second_split_for_route(self, seeded: Store, make: Any) -> None:
        seeded.create("split", make.split("one", orders=1), "t")
        with pytest.raises(Conflict, match="route 'orders' already has split 'one'") as info:
            seeded.create("split", make.split("two", orders_v2=1), "t")
        assert info.value.field == "route"
        # Replacing the one split of a route is fine.
        assert seeded.replace("split", "one", make.split("one", orders_v2=1), "t") == 5

    def test_route_replace_checks_service(self, seeded: Store, make: Any) -> None:
        with pytest.raises(Conflict) as info:
            seeded.replace("route", "orders", make.route("orders", service="ghost"), "t")
        assert info.value.field == "service"
        assert seeded.get("route", "orders").service == "orders"  # type: ignore[attr-defined]
        _unchanged(seeded, 3, 3)

    def test_delete_service_in_use_names_users(self, seeded: Store, make: Any) -> None:
        seeded.create("route", make.route("admin", service="orders-v2"), "t")
        seeded.create("split", make.split(orders=1, orders_v2=0), "t")
        with pytest.raises(Conflict) as info:
            seeded.delete("service", "orders-v2", "t")
        assert str(info.value) == (
            "service 'orders-v2' is still used by route 'admin', split 'orders-canary'"
        )
        _unchanged(seeded, 5, 5)

    def test_delete_route_with_split(self, seeded: Store, make: Any) -> None:
        seeded.create("split", make.split(orders=1), "t")
        with pytest.raises(Conflict, match="route 'orders' is still used by split"):
            seeded.delete("route", "orders", "t")
        seeded.delete("split", "orders-canary", "t")
        seeded.delete("route", "orders", "t")
        seeded.delete("service", "orders", "t")
        assert seeded.revision() == 7

    def test_rename_refused(self, seeded: Store, make: Any) -> None:
        with pytest.raises(Conflict, match="cannot be renamed") as info:
            seeded.replace("service", "orders", make.service("other"), "t")
        assert info.value.field == "name"
        _unchanged(seeded, 3, 3)


def test_admin_token_hash(store: Store) -> None:
    assert store.admin_token_hash() is None
    store.set_admin_token_hash("a" * 64)
    store.set_admin_token_hash("b" * 64)
    assert store.admin_token_hash() == "b" * 64
    _unchanged(store, 0, 0)  # a setting, not a declaration change


class TestLoadSince:
    """The incremental reload the xDS side uses equals a full load."""

    def test_applies_creates_updates_and_deletes(self, store: Store, make: Any) -> None:
        store.create("service", make.service("orders"), "t")
        store.create("service", make.service("old"), "t")
        store.create("route", make.route("orders"), "t")
        before = store.load()
        store.create("service", make.service("orders-v2"), "t")
        store.replace("route", "orders", make.route("orders", service="orders-v2"), "t")
        store.delete("service", "old", "t")
        store.create("split", make.split(orders=90, orders_v2=10), "t")
        after = store.load_since(before)
        assert after == store.load()
        assert after.revision == 7
        assert "old" not in after.services
        assert before.services.keys() == {"orders", "old"}  # the old one is untouched

    def test_unchanged_returns_the_same_declaration(self, store: Store, make: Any) -> None:
        store.create("service", make.service("orders"), "t")
        decl = store.load()
        assert store.load_since(decl) is decl

    def test_falls_back_to_a_full_load_when_the_audit_does_not_cover(
        self, store: Store, make: Any
    ) -> None:
        store.create("service", make.service("orders"), "t")
        stale = store.load()
        store.create("service", make.service("more"), "t")
        from dataclasses import replace

        # A declaration claiming a revision the audit cannot bridge from.
        bogus = replace(stale, revision=store.revision() + 5)
        assert store.load_since(bogus) == store.load()

    def test_key_changes_reread_only_their_consumers_and_equal_a_full_load(
        self, database_url: str
    ) -> None:
        from datetime import UTC, datetime, timedelta

        from turnout.models.consumer import ConsumerSpec
        from turnout.models.key import KeyCreate

        keyed = Store(database_url, secret_key="store-test-secret-key-0123456789")
        try:
            for name in ("alice", "bob", "carol"):
                keyed.create("consumer", ConsumerSpec(name=name), "t")
                keyed.keys.import_keys(
                    name, [f"{name}-key-{i:02d}-long-enough" for i in range(3)], "t"
                )
            before = keyed.load()
            assert len(before.api_keys) == 9
            soon = datetime.now(UTC) + timedelta(hours=1)
            created, _ = keyed.keys.of("alice").create(KeyCreate(expires_at=soon), "t")
            bob_key = next(k for k in before.api_keys if k.consumer == "bob")
            keyed.keys.of("bob").delete(bob_key.id, "t")
            keyed.delete("consumer", "carol", "t")
            after = keyed.load_since(before)
            assert after == keyed.load()
            assert [k.consumer for k in after.api_keys].count("alice") == 4
            assert bob_key not in after.api_keys
            assert all(k.consumer != "carol" for k in after.api_keys)
            assert list(after.api_keys) == sorted(after.api_keys, key=lambda k: k.id)
            # Expiry is a write too: the expired key leaves on the next reload.
            keyed.keys.expire(soon + timedelta(seconds=1))
            expired = keyed.load_since(after)
            assert expired == keyed.load()
            assert created.id not in {k.id for k in expired.api_keys}
        finally:
            keyed.close()

    def test_a_reload_of_many_keys_sorts_again_and_equals_a_full_load(
        self, database_url: str
    ) -> None:
        """Past `_SPLICE_AT_MOST` keys in or out, the reload sorts instead of inserting."""
        from turnout.models.consumer import ConsumerSpec
        from turnout.storage.keystore import _SPLICE_AT_MOST

        keyed = Store(database_url, secret_key="store-test-secret-key-0123456789")
        try:
            for name in ("alice", "bob"):
                keyed.create("consumer", ConsumerSpec(name=name), "t")
            keyed.keys.import_keys("bob", [f"bob-key-{i:03d}-long-enough" for i in range(5)], "t")
            before = keyed.load()
            many = [f"alice-key-{i:03d}-long-enough" for i in range(_SPLICE_AT_MOST + 1)]
            keyed.keys.import_keys("alice", many, "t")
            after = keyed.load_since(before)
            assert after == keyed.load()
            assert len(after.api_keys) == len(many) + 5
            keyed.delete("consumer", "alice", "t")
            gone = keyed.load_since(after)
            assert gone == keyed.load()
            assert {k.consumer for k in gone.api_keys} == {"bob"}
        finally:
            keyed.close()
