"""Backup and restore of everything that defines what a cluster serves.

A backup holds the declaration (entities), the consumers' API keys (still
encrypted under TURNOUT_SECRET_KEY, ids kept: each ciphertext is bound to its
row id), the revision number, the audit trail (from which every past revision
is rebuilt, `turnout/storage/revisions.py`) and the freezes (ids kept: operators
and audit events name them). Restoring writes them back unchanged, in one
transaction, and sets the revision counter to the source's, so a restored
database reports the same revisions, the same history, the same keys and,
translated, the same xDS bytes.

Left out, on purpose: admin tokens and the admin token hash (the credentials of
the source cluster's operators, not of its traffic: a new cluster makes its own),
load reports (observations of the old proxies, expired within minutes) and proxy
status (connections to the old cluster; proxies report again when they connect).

Before anything is written, every key of the backup is decrypted with the secret
given (`prepare_keys`): a wrong secret is refused, never stored as keys nobody
can read. With the old secret as well, keys are re-encrypted under the new one.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session

from turnout.models.entities import ENTITIES, Entity
from turnout.models.errors import Conflict, NotConfigured
from turnout.models.freeze import Freeze, FreezeRow
from turnout.models.key import ApiKey, ConsumerKeyRow

# Where `turnout restore --old-secret-key` reads the secret a backup's keys are under.
from turnout.settings import OLD_SECRET_KEY_ENV as OLD_SECRET_KEY_ENV
from turnout.storage import changes
from turnout.storage.audit import AuditEvent, AuditEventRow
from turnout.storage.keycrypt import SECRET_KEY_ENV, KeyCipher, KeyCipherError
from turnout.storage.lenient import invalid_row
from turnout.storage.rows import REVISION_ROW_ID, RevisionRow


class KeyBackup(BaseModel):
    """One API key as a backup holds it: the stored row, ciphertext and all."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    # Bounds of the columns (`ConsumerKeyRow`): a damaged file is refused by name.
    id: str = Field(min_length=1, max_length=32)
    consumer: str = Field(min_length=1, max_length=128)
    prefix: str = Field(max_length=16)
    lookup_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    ciphertext: str = Field(min_length=1, max_length=4096)
    created_at: AwareDatetime
    expires_at: AwareDatetime | None = None


def _exported(ent: Entity, row: Any) -> dict[str, Any]:
    """A row as its spec's JSON; one today's validation refuses stops the backup by
    name (`restore` refuses such a file, so it must not be written)."""
    try:
        return ent.to_spec(row).model_dump(mode="json")
    except ValidationError:
        raise invalid_row(ent, row) from None


def export(session: Session) -> dict[str, Any]:
    """Revision, entities by plural, keys, audit events and freezes, all JSON-ready."""
    data: dict[str, Any] = {
        "revision": session.get_one(RevisionRow, REVISION_ROW_ID).value,
    }
    for ent in ENTITIES.values():
        rows = session.scalars(select(ent.row).order_by(ent.row.name))  # type: ignore[attr-defined]
        data[ent.plural] = [_exported(ent, r) for r in rows]
    keys = session.scalars(select(ConsumerKeyRow).order_by(ConsumerKeyRow.id))
    data["consumer_keys"] = [KeyBackup.model_validate(k).model_dump(mode="json") for k in keys]
    events = session.scalars(select(AuditEventRow).order_by(AuditEventRow.id))
    data["audit"] = [
        AuditEvent.model_validate(e).model_dump(mode="json", exclude={"id"}) for e in events
    ]
    freezes = session.scalars(select(FreezeRow).order_by(FreezeRow.id))
    data["freezes"] = [Freeze.model_validate(f).model_dump(mode="json") for f in freezes]
    return data


def backed_up_keys(data: dict[str, Any]) -> list[KeyBackup]:
    """The key rows of a backup (none in a format 1 backup), validated."""
    keys = [KeyBackup.model_validate(item) for item in data.get("consumer_keys", [])]
    if len({k.id for k in keys}) != len(keys):
        raise ValueError("the backup's consumer_keys repeat an id")
    return keys


def _need_cipher(cipher: KeyCipher | None, count: int, what: str) -> KeyCipher:
    if cipher is None:
        raise NotConfigured(
            f"{what} holds {count} API key(s): set {SECRET_KEY_ENV} to the secret they are "
            "encrypted with"
        )
    return cipher


def decrypt_keys(
    keys: Sequence[KeyBackup], cipher: KeyCipher | None, at: datetime | None, what: str
) -> tuple[ApiKey, ...]:
    """The keys in clear, sorted by id; those expired at `at` left out (None: none are).

    `KeyCipherError` names the first key the secret does not open.
    """
    if not keys:
        return ()
    cipher = _need_cipher(cipher, len(keys), what)
    out = []
    for key in sorted(keys, key=lambda k: k.id):
        if at is not None and key.expires_at is not None and key.expires_at <= at:
            continue
        try:
            plain = cipher.decrypt(key.id, key.ciphertext)
        except (KeyCipherError, ValueError) as exc:
            raise KeyCipherError(
                f"{what}: API key {key.consumer}/{key.id} cannot be decrypted with "
                f"{SECRET_KEY_ENV}: it was encrypted under another secret (give that one, or "
                f"re-encrypt: the old secret in {OLD_SECRET_KEY_ENV} and --old-secret-key)"
            ) from exc
        out.append(ApiKey(key.id, key.consumer, plain))
    return tuple(out)


def prepare_keys(
    keys: Sequence[KeyBackup], cipher: KeyCipher | None, old: KeyCipher | None
) -> list[KeyBackup]:
    """The rows to store: checked to open under the target's secret, or re-encrypted.

    Without `old`, every key must decrypt with `cipher` (the same secret as the
    source). With `old` (the source's secret), each key is decrypted with it and
    encrypted again, and its lookup hash recomputed, under `cipher`.
    """
    if not keys:
        return []
    target = _need_cipher(cipher, len(keys), "the backup")
    if old is None:
        decrypt_keys(keys, target, None, "the backup")
        return list(keys)
    plain = {k.id: k.key for k in decrypt_keys(keys, old, None, "the backup (old secret)")}
    return [
        key.model_copy(
            update={
                "lookup_hash": target.lookup_hash(plain[key.id]),
                "ciphertext": target.encrypt(key.id, plain[key.id]),
            }
        )
        for key in keys
    ]


def is_empty(session: Session) -> bool:
    """No revision, no entity, no key, no audit event, no freeze."""
    if session.get_one(RevisionRow, REVISION_ROW_ID).value != 0:
        return False
    tables = [ent.row for ent in ENTITIES.values()] + [ConsumerKeyRow, AuditEventRow, FreezeRow]
    return all(session.scalar(select(func.count()).select_from(t)) == 0 for t in tables)


def restore(
    session: Session, data: dict[str, Any], force: bool, keys: Sequence[KeyBackup] = ()
) -> int:
    """Write a backup into this database; returns its revision.

    `keys` are the backup's keys as `prepare_keys` returned them. Refused
    (`Conflict`) unless the database is empty or `force` is given, in which case
    everything the backup covers is replaced.
    """
    if not is_empty(session):
        if not force:
            raise Conflict("the database is not empty; restore refuses to overwrite it")
        # Keys first: they refer to consumers.
        session.execute(delete(ConsumerKeyRow))
        for ent in reversed(ENTITIES.values()):
            session.execute(delete(ent.row))
        session.execute(delete(AuditEventRow))
        session.execute(delete(FreezeRow))
        session.flush()
    for ent in ENTITIES.values():
        for item in data.get(ent.plural, []):
            changes.create(session, ent, ent.spec.model_validate(item))
    if keys:  # Core insert: 100,000 keys should not make 100,000 ORM objects
        session.execute(insert(ConsumerKeyRow), [key.model_dump() for key in keys])
    events = [
        AuditEvent.model_validate({**item, "id": 0}).model_dump(exclude={"id"})
        for item in data.get("audit", [])
    ]
    if events:  # in order: ids keep the trail's order, which history replays
        session.execute(insert(AuditEventRow), events)
    for item in data.get("freezes", []):
        freeze = Freeze.model_validate(item)
        fields = freeze.model_dump()
        fields["scope"] = freeze.scope.model_dump(mode="json")
        session.add(FreezeRow(**fields))
    session.flush()
    if session.get_bind().dialect.name == "postgresql" and data.get("freezes"):
        # Ids were given explicitly: move the sequence past them for new freezes.
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('freezes', 'id'), "
                "(SELECT max(id) FROM freezes))"
            )
        )
    revision = int(data["revision"])
    session.get_one(RevisionRow, REVISION_ROW_ID).value = revision
    session.flush()
    return revision
