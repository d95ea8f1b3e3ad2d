"""`turnout backup | restore | verify`: a database moved to a new cluster, proven equal.

A backup file (JSON, written readable by its owner only) holds what
`Store.export` reads (revision, entities, API keys still encrypted, audit trail,
freezes) plus the sha256 of every xDS resource a proxy of each node group would
receive, the API keys' extension config (ECDS) included. `verify` compares the
database with the file: the revision, every entity, every key (decrypted, by id),
the freezes, and the xDS bytes, translated from the database now, against the
digests recorded at backup time and against the file's own declaration
translated now. Any difference is named and exits 1.

Lives beside `serve.py` because it is the one other place that joins the
declaration (`models`) to the translation (`xds`).
"""

import hashlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError

from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import TurnoutError
from turnout.models.key import ApiKey
from turnout.models.route import DEFAULT_GROUP
from turnout.settings import current as current_settings
from turnout.storage import backup as model_backup
from turnout.storage.keycrypt import KeyCipher
from turnout.storage.revisions import diff
from turnout.storage.store import Store
from turnout.xds.translate import NodeGroup, build_resources, resource_name

FORMAT_VERSION = "2"
READABLE_FORMATS = ("1", "2")
"""Format 1 (before keys were backed up): flat default-group digests, no keys."""
KIND = "turnout-backup"
OLD_SECRET_KEY_ENV = model_backup.OLD_SECRET_KEY_ENV


def groups_of(*decls: Declaration) -> list[str]:
    """Every node group the declarations serve: `default` and each group a route names."""
    names = {DEFAULT_GROUP}
    for decl in decls:
        for route in decl.routes.values():
            names.update(route.groups)
    return sorted(names)


def xds_digests(decl: Declaration, opts: NodeGroup | None = None) -> dict[str, str]:
    """`<type_url>/<name>` -> sha256 of the resource's deterministic bytes (one group)."""
    resources = build_resources(decl, opts or NodeGroup())
    return {
        f"{type_url}/{resource_name(msg)}": hashlib.sha256(
            msg.SerializeToString(deterministic=True)
        ).hexdigest()
        for type_url, msgs in resources.items()
        for msg in msgs
    }


def group_digests(decl: Declaration, groups: list[str]) -> dict[str, dict[str, str]]:
    """Per node group, what `xds_digests` gives for a proxy with the default listener."""
    return {group: xds_digests(decl, NodeGroup(group=group)) for group in groups}


def _specs(data: dict[str, Any]) -> dict[str, dict[str, BaseModel]]:
    """The backup's entities by plural then name; `ValueError` locating the first bad one."""
    specs: dict[str, dict[str, BaseModel]] = {}
    for ent in ENTITIES.values():
        items = data.get(ent.plural, [])
        if not isinstance(items, list):
            raise ValueError(f"the backup's {ent.plural} must be a list")
        specs[ent.plural] = {}
        for i, item in enumerate(items):
            try:
                spec = ent.spec.model_validate(item)
            except ValidationError as exc:
                error = exc.errors(include_url=False)[0]
                where = ".".join(map(str, [f"{ent.plural}[{i}]", *error["loc"]]))
                raise ValueError(f"the backup's {where}: {error['msg']}") from None
            specs[ent.plural][spec.name] = spec  # type: ignore[attr-defined]
    return specs


def _declaration(data: dict[str, Any], api_keys: tuple[ApiKey, ...] = ()) -> Declaration:
    return Declaration(revision=int(data["revision"]), api_keys=api_keys, **_specs(data))  # type: ignore[arg-type]


def _write_private(path: str, text: str) -> None:
    """The file holds encrypted keys and the whole audit trail: owner-only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def backup(store: Store, path: str, out: TextIO) -> int:
    at = datetime.now(UTC)
    try:
        data = store.export()
        keys = model_backup.backed_up_keys(data)
        api_keys = model_backup.decrypt_keys(keys, store.keys.cipher, at, "the database")
    except (TurnoutError, ValueError) as exc:
        print(f"turnout backup: {exc}; nothing written", file=sys.stderr)
        return 1
    decl = _declaration(data, api_keys)
    document = {
        "_format_version": FORMAT_VERSION,
        "kind": KIND,
        "backed_up_at": at.isoformat(),
        **data,
        "xds_sha256": group_digests(decl, groups_of(decl)),
    }
    _write_private(path, json.dumps(document, indent=1, sort_keys=True) + "\n")
    out.write(
        f"backup of revision {data['revision']} written to {path}: "
        + ", ".join(f"{len(data[e.plural])} {e.plural}" for e in ENTITIES.values())
        + f", {len(keys)} API keys, {len(data['audit'])} audit events, "
        f"{len(data['freezes'])} freezes\n"
    )
    return 0


def _load(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if (
        not isinstance(data, dict)
        or data.get("kind") != KIND
        or data.get("_format_version") not in READABLE_FORMATS
        or not isinstance(data.get("revision"), int)
    ):
        raise ValueError(f"{path} is not a Turnout backup (format {FORMAT_VERSION})")
    return data


def _old_secret(use_old: bool) -> str | None:
    if not use_old:
        return None
    secret = current_settings().old_secret_key
    if not secret:
        raise ValueError(f"--old-secret-key reads the old secret from {OLD_SECRET_KEY_ENV}: unset")
    return secret


def restore(store: Store, path: str, out: TextIO, *, force: bool, old_secret: bool = False) -> int:
    try:
        data = _load(path)
        _specs(data), _recorded(data)  # the whole file is checked before anything is written
        revision = store.restore(data, force=force, old_secret=_old_secret(old_secret))
    except (TurnoutError, ValueError) as exc:
        hint = " (use --force to replace everything)" if "not empty" in str(exc) else ""
        print(f"turnout restore: {exc}{hint}; nothing changed", file=sys.stderr)
        return 1
    keys = len(data.get("consumer_keys", []))
    how = ", re-encrypted under the new secret" if old_secret and keys else ""
    out.write(f"restored revision {revision} from {path} ({keys} API keys{how})\n")
    return 0


def _recorded(data: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The digests recorded at backup time, by node group."""
    digests = data.get("xds_sha256")
    by_group = {DEFAULT_GROUP: digests} if data["_format_version"] == "1" else digests
    if not isinstance(by_group, dict) or not all(
        isinstance(d, dict) and all(isinstance(v, str) for v in d.values())
        for d in by_group.values()
    ):
        raise ValueError("the backup's xds_sha256 is damaged")
    return by_group


def _key_problems(backed: tuple[ApiKey, ...], stored: tuple[ApiKey, ...]) -> list[str]:
    mine, theirs = {k.id: k for k in backed}, {k.id: k for k in stored}
    problems = []
    for key_id in sorted(set(mine) | set(theirs)):
        key = mine.get(key_id) or theirs[key_id]
        if key_id not in theirs:
            problems.append(f"API key {key.consumer}/{key_id} is missing from the database")
        elif key_id not in mine:
            problems.append(f"API key {key.consumer}/{key_id} is not in the backup")
        elif mine[key_id] != theirs[key_id]:
            problems.append(f"API key {key.consumer}/{key_id} differs (consumer or key)")
    return problems


def _xds_problems(
    label: str, digests: dict[str, dict[str, str]], recorded: dict[str, dict[str, str]]
) -> list[str]:
    problems = []
    for group in sorted(set(digests) | set(recorded)):
        mine, theirs = digests.get(group, {}), recorded.get(group, {})
        names = sorted(n for n in set(mine) | set(theirs) if mine.get(n) != theirs.get(n))
        if names:
            problems.append(
                f"xDS of node group {group!r}: {label} differs from the backup in "
                + ", ".join(names)
            )
    return problems


def verify(store: Store, path: str, out: TextIO, *, old_secret: bool = False) -> int:
    """0 when the database serves exactly what the backup recorded, else 1 (named)."""
    try:
        data = _load(path)
        old = _old_secret(old_secret)
        stamp = data.get("backed_up_at")
        backed_at = datetime.fromisoformat(stamp) if stamp else datetime.now(UTC)
        cipher = KeyCipher(old) if old else store.keys.cipher
        keys = model_backup.backed_up_keys(data)
        file_keys = model_backup.decrypt_keys(keys, cipher, None, "the backup")
        now_data = store.export()
        db_keys = model_backup.decrypt_keys(
            model_backup.backed_up_keys(now_data), store.keys.cipher, None, "the database"
        )
        decl = store.load()
        from_file = _declaration(data, model_backup.decrypt_keys(keys, cipher, backed_at, ""))
        recorded = _recorded(data)
    except (TurnoutError, ValueError, KeyError) as exc:
        print(f"turnout verify: {exc}", file=sys.stderr)
        return 1
    groups = groups_of(from_file, decl)
    problems = []
    if decl.revision != data["revision"]:
        problems.append(f"revision {decl.revision} != backup's {data['revision']}")
    for plural, changed in diff(from_file, decl).items():
        names = sorted({*changed.added, *changed.removed, *changed.changed})
        problems.append(f"{plural} differ from the backup's: {', '.join(names)}")
    problems += _key_problems(file_keys, db_keys)
    if now_data["freezes"] != data.get("freezes", []):
        problems.append("freezes differ from the backup's")
    problems += _xds_problems("the database", group_digests(decl, groups), recorded)
    problems += _xds_problems(
        "the backup's declaration, translated now", group_digests(from_file, groups), recorded
    )
    if problems:
        for problem in problems:
            print(f"turnout verify: {problem}", file=sys.stderr)
        print(f"turnout verify: FAILED, {len(problems)} difference(s)", file=sys.stderr)
        return 1
    count = sum(map(len, recorded.values()))
    out.write(
        f"verified: revision {decl.revision}, {len(db_keys)} API keys, "
        f"{len(now_data['freezes'])} freezes, {count} xDS resources in {len(recorded)} node "
        "group(s) byte-identical to the backup\n"
    )
    return 0
