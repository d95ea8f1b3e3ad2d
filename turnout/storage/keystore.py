"""API keys in the store: create, list, revoke, import, expire, and load decrypted.

`KeyRing.of(consumer)` is a `Records` (`turnout/storage/records.py`): one
consumer's keys, created, listed, got and deleted (revoked) the way tokens and
freezes are. What only keys have stays on `KeyRing`: bulk imports, expiry, and the
decrypted keys the declaration carries (`load`, `reload`). `turnout.models.key`
holds what a key is.

Each change is one store write through `Store.commit_changes` (revision bump +
audit event that never holds the key), so adding or revoking a key reaches Envoy
through the same change feed as any other change. Keys are immutable once stored,
so decrypted keys are cached by id: loading the declaration after one new key
decrypts one key, not 100,000.
"""

import bisect
import builtins
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import compress
from operator import attrgetter
from typing import TYPE_CHECKING

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from turnout.models.consumer import ConsumerRow
from turnout.models.entities import Entity
from turnout.models.errors import Conflict, NotConfigured, NotFound
from turnout.models.key import (
    KEY_PREFIX_LENGTH,
    ApiKey,
    ConsumerKeyRow,
    KeyCreate,
    KeyCreated,
    KeyInfo,
)
from turnout.storage.audit import Action
from turnout.storage.changes import Change
from turnout.storage.keycrypt import SECRET_KEY_ENV, KeyCipher

if TYPE_CHECKING:
    from turnout.storage.store import Store

KEY_ENTITY = Entity("consumer_key", "keys", KeyInfo, ConsumerKeyRow)
"""How key changes appear in the audit trail (`entity_name` is the consumer)."""
GENERATED_KEY_PREFIX = "tk_"
EXPIRY_ACTOR = "turnout:expiry"
RELOAD_CONSUMERS_AT_MOST = 500
"""Beyond this many changed consumers in one reload, all keys are read again."""
_SPLICE_AT_MOST = 64
"""Keys taken out or put in by a reload beyond which the list is sorted again."""
_ID = attrgetter("id")
_CONSUMER = attrgetter("consumer")


def generate_key() -> str:
    """A new key: 256 random bits, URL-safe, recognisable by its `tk_` prefix."""
    return GENERATED_KEY_PREFIX + secrets.token_urlsafe(32)


def _info(row: ConsumerKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        consumer=row.consumer,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class KeyRing:
    """The API keys of every consumer, in the store's database."""

    def __init__(self, store: "Store", secret_key: str | None) -> None:
        self._store = store
        self._cipher = KeyCipher(secret_key) if secret_key else None
        self._known: dict[str, ApiKey] = {}
        """Decrypted keys by id; keys are immutable, so entries never go stale."""
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether TURNOUT_SECRET_KEY was given, so keys can be stored and read."""
        return self._cipher is not None

    @property
    def cipher(self) -> KeyCipher | None:
        """The cipher of TURNOUT_SECRET_KEY, if given (backup and restore check keys with it)."""
        return self._cipher

    def forget(self) -> None:
        """Drop every decrypted key (after a restore replaced the key table)."""
        with self._lock:
            self._known.clear()

    def _require_cipher(self) -> KeyCipher:
        if self._cipher is None:
            raise NotConfigured(f"API keys need {SECRET_KEY_ENV} to be set")
        return self._cipher

    def of(self, consumer: str) -> "ConsumerKeys":
        """The keys of `consumer`, as `Records`."""
        return ConsumerKeys(self, consumer)

    def _remember(self, keys: Iterable[ApiKey]) -> None:
        """Keep keys just written in clear, so loading them decrypts nothing."""
        with self._lock:
            for key in keys:
                self._known[key.id] = key

    def _drop(self, key_ids: Iterable[str]) -> None:
        with self._lock:
            for key_id in key_ids:
                self._known.pop(key_id, None)

    def count(self) -> int:
        with self._store.read_transaction() as session:
            return int(session.scalar(select(func.count()).select_from(ConsumerKeyRow)) or 0)

    def import_keys(
        self,
        consumer: str,
        keys: Sequence[str],
        actor: str,
        expires_at: Mapping[str, datetime] | None = None,
    ) -> int:
        """Store many existing keys of one consumer in one write (migrations, benchmarks).

        All or nothing: one duplicate (within `keys` or with stored keys) refuses all.
        `expires_at` gives some keys an expiry (by key), e.g. a Kong credential's `ttl`.
        """
        expiry = expires_at or {}
        cipher = self._require_cipher()
        now = datetime.now(UTC).replace(microsecond=0)
        rows = []
        for key in keys:
            key_id = secrets.token_hex(6)
            rows.append(
                {
                    "id": key_id,
                    "consumer": consumer,
                    "prefix": key[:KEY_PREFIX_LENGTH],
                    "lookup_hash": cipher.lookup_hash(key),
                    "ciphertext": cipher.encrypt(key_id, key),
                    "created_at": now,
                    "expires_at": expiry.get(key),
                }
            )
        hashes = [r["lookup_hash"] for r in rows]
        if len(set(hashes)) != len(hashes):
            raise Conflict("the keys to import repeat", field="keys")
        with self._store.write_transaction() as session:
            _require_consumer(session, consumer)
            for start in range(0, len(hashes), 1000):
                chunk = hashes[start : start + 1000]
                if session.scalar(
                    select(ConsumerKeyRow.id).where(ConsumerKeyRow.lookup_hash.in_(chunk)).limit(1)
                ):
                    raise Conflict("a key to import is already in use", field="keys")
            session.execute(insert(ConsumerKeyRow), rows)
            summary = KeyInfo(id=f"{len(rows)} keys", consumer=consumer, prefix="", created_at=now)
            revision = self._store.commit_changes(
                session, actor, [Change(Action.CREATE, KEY_ENTITY.kind, consumer, None, summary)]
            )
        self._remember(
            ApiKey(row["id"], consumer, key) for row, key in zip(rows, keys, strict=True)
        )
        return revision

    def import_new(
        self,
        consumer: str,
        keys: Sequence[str],
        actor: str,
        expires_at: Mapping[str, datetime] | None = None,
    ) -> int:
        """Import those of `keys` the consumer does not have yet; return how many.

        For re-runnable imports (`turnout import kong`): a key the consumer already
        has is skipped, so importing the same file twice stores each key once; a
        key held by ANOTHER consumer refuses all (Conflict), as `import_keys` does.
        """
        cipher = self._require_cipher()
        hashes = {cipher.lookup_hash(key): key for key in keys}
        with self._store.read_transaction() as session:
            rows = session.execute(
                select(ConsumerKeyRow.lookup_hash, ConsumerKeyRow.consumer).where(
                    ConsumerKeyRow.lookup_hash.in_(builtins.list(hashes))
                )
            )
            held = {lookup: owner for lookup, owner in rows}
        if any(owner != consumer for owner in held.values()):
            raise Conflict("a key to import belongs to another consumer", field="keys")
        new = [key for lookup, key in hashes.items() if lookup not in held]
        if new:
            self.import_keys(consumer, new, actor, expires_at)
        return len(new)

    def import_new_many(
        self,
        keys: Mapping[str, Sequence[str]],
        actor: str,
        expires_at: Mapping[str, datetime] | None = None,
    ) -> int:
        """`import_new` for many consumers (consumer → keys) in ONE write and revision.

        A Kong file with 10,000 consumers would otherwise take 10,000 transactions.
        Keys a consumer already has are skipped; a key held by another consumer, a
        repeated key or an unknown consumer refuses all. Returns how many were new.
        """
        cipher = self._require_cipher()
        expiry = expires_at or {}
        wanted = {cipher.lookup_hash(k): (c, k) for c, batch in keys.items() for k in batch}
        if len(wanted) != sum(len(batch) for batch in keys.values()):
            raise Conflict("the keys to import repeat", field="keys")
        now = datetime.now(UTC).replace(microsecond=0)
        hashes = builtins.list(wanted)
        with self._store.write_transaction() as session:
            names = builtins.list(keys)
            for start in range(0, len(names), 1000):
                chunk = names[start : start + 1000]
                found = set(
                    session.scalars(select(ConsumerRow.name).where(ConsumerRow.name.in_(chunk)))
                )
                if len(found) != len(chunk):
                    raise NotFound("consumer", sorted(set(chunk) - found)[0])
            held: dict[str, str] = {}
            for start in range(0, len(hashes), 1000):
                chunk = hashes[start : start + 1000]
                rows_held = session.execute(
                    select(ConsumerKeyRow.lookup_hash, ConsumerKeyRow.consumer).where(
                        ConsumerKeyRow.lookup_hash.in_(chunk)
                    )
                )
                held.update((lookup, owner) for lookup, owner in rows_held)
            if any(owner != wanted[lookup][0] for lookup, owner in held.items()):
                raise Conflict("a key to import belongs to another consumer", field="keys")
            rows = []
            for lookup, (consumer, key) in wanted.items():
                if lookup in held:
                    continue
                key_id = secrets.token_hex(6)
                rows.append(
                    {
                        "id": key_id,
                        "consumer": consumer,
                        "prefix": key[:KEY_PREFIX_LENGTH],
                        "lookup_hash": lookup,
                        "ciphertext": cipher.encrypt(key_id, key),
                        "created_at": now,
                        "expires_at": expiry.get(key),
                    }
                )
            if not rows:
                return 0
            session.execute(insert(ConsumerKeyRow), rows)
            per_consumer: dict[str, int] = {}
            for row in rows:
                per_consumer[row["consumer"]] = per_consumer.get(row["consumer"], 0) + 1
            done = [
                Change(
                    Action.CREATE,
                    KEY_ENTITY.kind,
                    consumer,
                    None,
                    KeyInfo(id=f"{n} keys", consumer=consumer, prefix="", created_at=now),
                )
                for consumer, n in sorted(per_consumer.items())
            ]
            self._store.commit_changes(session, actor, done)
        self._remember(
            ApiKey(row["id"], row["consumer"], wanted[row["lookup_hash"]][1]) for row in rows
        )
        return len(rows)

    def next_expiry(self) -> datetime | None:
        """When the next key expires, if any key has an expiry."""
        with self._store.read_transaction() as session:
            return session.scalar(select(func.min(ConsumerKeyRow.expires_at)))

    def expire(self, now: datetime) -> int | None:
        """Delete every key expired at `now` in one write; the revision, or None."""
        with self._store.write_transaction() as session:
            rows = list(
                session.scalars(
                    select(ConsumerKeyRow)
                    .where(ConsumerKeyRow.expires_at <= now)
                    .order_by(ConsumerKeyRow.id)
                )
            )
            if not rows:
                return None
            expired = [row.id for row in rows]
            done = []
            for row in rows:
                before = _info(row).model_dump(mode="json")
                session.delete(row)
                done.append(Change(Action.DELETE, KEY_ENTITY.kind, row.consumer, before, None))
            revision = self._store.commit_changes(session, EXPIRY_ACTOR, done, freeze_exempt=True)
        self._drop(expired)
        return revision

    def load(self, session: Session, now: datetime) -> tuple[ApiKey, ...]:
        """Every key not expired at `now`, decrypted, sorted by id.

        Keys never change once stored, so each is decrypted (and its `ApiKey` made)
        once. Core, not ORM rows, for the id list.
        """
        return self._read(session, now, None)

    def reload(
        self, session: Session, now: datetime, previous: tuple[ApiKey, ...], consumers: set[str]
    ) -> tuple[ApiKey, ...]:
        """`previous` with the keys of `consumers` read again, sorted by id.

        What a reload after a key change costs: the changed consumers' keys, not all
        100,000. Keys that expire without a write are removed by `expire` (a write).
        """
        if len(consumers) > RELOAD_CONSUMERS_AT_MOST:
            return self.load(session, now)
        fresh = self._read(session, now, consumers)
        # The changed consumers' old keys, found by C loops (map, compress): a Python
        # loop and a sort over 100,000 keys cost ~50 ms per key change on a loaded host.
        hits = map(consumers.__contains__, map(_CONSUMER, previous))
        gone = builtins.list(compress(range(len(previous)), hits))
        if len(gone) > _SPLICE_AT_MOST or len(fresh) > _SPLICE_AT_MOST:
            kept = [key for key in previous if key.consumer not in consumers]
            return tuple(sorted([*kept, *fresh], key=_ID))
        keys = builtins.list(previous)
        for at in reversed(gone):
            del keys[at]
        for key in fresh:  # `previous` is by id: each goes in at its place
            bisect.insort(keys, key, key=_ID)
        return tuple(keys)

    def _read(
        self, session: Session, now: datetime, consumers: set[str] | None
    ) -> tuple[ApiKey, ...]:
        table = ConsumerKeyRow.__table__
        query = (
            select(table.c.id)
            .where(or_(table.c.expires_at.is_(None), table.c.expires_at > now))
            .order_by(table.c.id)
        )
        if consumers is not None:
            query = query.where(table.c.consumer.in_(consumers))
        ids = session.connection().execute(query).scalars().all()
        if not ids:
            return ()
        cipher = self._require_cipher()
        with self._lock:
            known = self._known
            missing = [key_id for key_id in ids if key_id not in known]
            for start in range(0, len(missing), 1000):
                chunk = missing[start : start + 1000]
                for key_id, consumer, ciphertext in session.execute(
                    select(table.c.id, table.c.consumer, table.c.ciphertext).where(
                        table.c.id.in_(chunk)
                    )
                ):
                    known[key_id] = ApiKey(key_id, consumer, cipher.decrypt(key_id, ciphertext))
            return tuple(known[key_id] for key_id in ids)


class ConsumerKeys:
    """One consumer's API keys, as `Records`: the key id is the name."""

    def __init__(self, ring: KeyRing, consumer: str) -> None:
        self._ring = ring
        self._store = ring._store
        self.consumer = consumer

    def create(self, spec: KeyCreate, actor: str) -> tuple[KeyCreated, int]:
        """Store a key (generated unless `spec.key`); return it once, and the revision."""
        consumer = self.consumer
        cipher = self._ring._require_cipher()
        key = spec.key or generate_key()
        key_id = secrets.token_hex(6)
        lookup = cipher.lookup_hash(key)
        with self._store.write_transaction() as session:
            _require_consumer(session, consumer)
            if session.scalar(
                select(ConsumerKeyRow.id).where(ConsumerKeyRow.lookup_hash == lookup)
            ):
                raise Conflict("this key is already in use; keys must be unique", field="key")
            row = ConsumerKeyRow(
                id=key_id,
                consumer=consumer,
                prefix=key[:KEY_PREFIX_LENGTH],
                lookup_hash=lookup,
                ciphertext=cipher.encrypt(key_id, key),
                created_at=datetime.now(UTC).replace(microsecond=0),
                expires_at=spec.expires_at,
            )
            session.add(row)
            info = _info(row)
            revision = self._store.commit_changes(
                session, actor, [Change(Action.CREATE, KEY_ENTITY.kind, consumer, None, info)]
            )
        self._ring._remember([ApiKey(key_id, consumer, key)])
        return KeyCreated(**info.model_dump(), key=key), revision

    def list(self) -> builtins.list[KeyInfo]:
        with self._store.read_transaction() as session:
            _require_consumer(session, self.consumer)
            rows = session.scalars(
                select(ConsumerKeyRow)
                .where(ConsumerKeyRow.consumer == self.consumer)
                .order_by(ConsumerKeyRow.created_at, ConsumerKeyRow.id)
            )
            return [_info(row) for row in rows]

    def get(self, name: str) -> KeyInfo:
        with self._store.read_transaction() as session:
            return _info(self._row(session, name))

    def delete(self, name: str, actor: str) -> int:
        """Revoke key `name` (its id)."""
        with self._store.write_transaction() as session:
            row = self._row(session, name)
            before = _info(row).model_dump(mode="json")
            session.delete(row)
            revision = self._store.commit_changes(
                session,
                actor,
                [Change(Action.DELETE, KEY_ENTITY.kind, self.consumer, before, None)],
            )
        self._ring._drop([name])
        return revision

    def _row(self, session: Session, key_id: str) -> ConsumerKeyRow:
        row = session.get(ConsumerKeyRow, key_id)
        if row is None or row.consumer != self.consumer:
            raise NotFound("key", f"{self.consumer}/{key_id}")
        return row


def _require_consumer(session: Session, consumer: str) -> None:
    if session.get(ConsumerRow, consumer) is None:
        raise NotFound("consumer", consumer)
