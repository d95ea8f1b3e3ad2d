"""`turnout dump | diff | apply | import kong` in their database form.

Without a server (`--database-url`, or no --server/TURNOUT_SERVER/context) these open
the database directly, through the same store, schemas and transaction as
`POST /config`; with a server, `turnout/cli/declarative.py` calls the API instead and
shares `print_diff` from here.
"""

import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TextIO

import yaml
from pydantic import BaseModel

from turnout.admin.declarative import DocumentError, dump_yaml, load_yaml
from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import TurnoutError
from turnout.storage.changes import KeysWouldBeDeleted
from turnout.storage.revisions import diff
from turnout.storage.store import Store

CLI_ACTOR = "cli"
DIFF_NONE, DIFF_ERROR, DIFF_CHANGES = 0, 1, 2
"""`turnout diff`'s exit codes (decK's `--non-zero-exit-code` convention)."""


def dump(store: Store, out: TextIO) -> int:
    out.write(dump_yaml(store.load()))
    return 0


def _read(path: str) -> str:
    return sys.stdin.read() if path == "-" else Path(path).read_text()


def diff_file(store: Store, path: str, out: TextIO) -> int:
    """Print what applying `path` would change (field by field).

    Exit codes as decK's `diff --non-zero-exit-code`, so CI can gate on it: 0 no change,
    2 changes, 1 an error (the file does not parse).
    """
    try:
        target = load_yaml(_read(path))
    except DocumentError as exc:
        print(f"turnout diff: {path}: {exc}", file=sys.stderr)
        return DIFF_ERROR
    return print_diff(store.load(), target, out, lambda name: len(store.keys.of(name).list()))


def print_diff(
    current: Declaration,
    target: Mapping[str, Mapping[str, BaseModel]],
    out: TextIO,
    key_count: Callable[[str], int],
) -> int:
    """Print the differences from `current` to `target`; DIFF_NONE or DIFF_CHANGES.

    Shared by the database and the API forms of `turnout diff` (the API form reads
    `current` from `GET /config` and counts keys with `GET /consumers/{name}/keys`).
    """
    wanted = Declaration(
        revision=current.revision,
        **{ent.plural: target.get(kind, {}) for kind, ent in ENTITIES.items()},  # type: ignore[arg-type]
    )
    differences = diff(current, wanted)
    changes = {k: v.model_dump(exclude_defaults=True) for k, v in differences.items()}
    if not changes:
        out.write("no changes\n")
        return DIFF_NONE
    out.write(yaml.safe_dump(changes, sort_keys=False))
    # Keys are not in the file, so the YAML above cannot show them: say it in comments.
    removed = differences["consumers"].removed if "consumers" in differences else {}
    for name in removed:
        count = key_count(name)
        if count:
            out.write(
                f"# delete consumer {name} ({count} API key{'s' if count != 1 else ''}): "
                "apply refuses unless --delete-keys\n"
            )
    return DIFF_CHANGES


def apply_file(
    store: Store,
    path: str,
    out: TextIO,
    *,
    dry_run: bool,
    select_tag: str | None,
    delete_keys: bool = False,
) -> int:
    """Make the declaration equal to `path`, in one transaction; print what changed.

    Deleting a consumer that has API keys needs `delete_keys`; without it the
    changes are printed (keys counted) and nothing is written, dry run or not.
    """
    try:
        target = load_yaml(_read(path))
        result = store.apply(
            target, CLI_ACTOR, select_tag=select_tag, dry_run=dry_run, delete_keys=delete_keys
        )
    except DocumentError as exc:
        print(f"turnout apply: {path}: {exc}; nothing changed", file=sys.stderr)
        return 2
    except KeysWouldBeDeleted as exc:
        for change in exc.changes:
            out.write(change.summary() + "\n")
        names = ", ".join(exc.consumers)
        print(
            f"turnout apply: refused: consumer(s) {names} have API keys that this apply "
            "would delete; pass --delete-keys to delete them; nothing changed",
            file=sys.stderr,
        )
        return 1
    except TurnoutError as exc:
        print(f"turnout apply: {exc}; nothing changed", file=sys.stderr)
        return 1
    for change in result.changes:
        out.write(change.summary() + "\n")
    if dry_run:
        out.write(f"dry run: {len(result.changes)} change(s), nothing written\n")
    else:
        out.write(f"revision {result.revision}: {len(result.changes)} change(s)\n")
    return 0


def import_kong(store: Store, path: str, out: TextIO, *, dry_run: bool) -> int:
    """Import a decK/Kong file: print what was imported and what could not be mapped."""
    from turnout.admin.kong import IMPORT_TAG, convert

    try:
        doc = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        print(f"turnout import kong: {path}: not valid YAML: {exc}", file=sys.stderr)
        return 2
    if not isinstance(doc, dict):
        print(f"turnout import kong: {path}: not a Kong declarative file", file=sys.stderr)
        return 2
    result = convert(doc)
    if result.keys and not store.keys.enabled:
        print(
            "turnout import kong: consumers have keys: set TURNOUT_SECRET_KEY to store them; "
            "nothing changed",
            file=sys.stderr,
        )
        return 1
    try:
        applied = store.apply(result.target, CLI_ACTOR, select_tag=IMPORT_TAG, dry_run=dry_run)
    except KeysWouldBeDeleted as exc:
        names = ", ".join(
            f"{n} ({k} API key{'s' if k != 1 else ''})" for n, k in exc.consumers.items()
        )
        print(
            f"turnout import kong: refused: consumer(s) {names} are no longer in the file; "
            "importing would delete their API keys (DELETE /consumers/{name} does, if that "
            "is meant); nothing changed",
            file=sys.stderr,
        )
        return 1
    except TurnoutError as exc:
        print(f"turnout import kong: {exc}; nothing changed", file=sys.stderr)
        return 1
    try:
        keys = 0 if dry_run else _import_keys(store, result.keys, result.expiry)
    except TurnoutError as exc:
        print(
            f"turnout import kong: revision {applied.revision} applied, but keys: {exc}",
            file=sys.stderr,
        )
        return 1
    out.write(f"imported ({len(result.imported)}):\n")
    out.writelines(f"  {line}\n" for line in result.imported)
    out.write(f"mapped, but different from Kong ({len(result.differs)}):\n")
    out.writelines(f"  {line}\n" for line in result.differs)
    out.write(f"not mapped ({len(result.not_mapped)}):\n")
    out.writelines(f"  {line}\n" for line in result.not_mapped)
    if dry_run:
        count = sum(map(len, result.keys.values()))
        out.write(f"dry run: {len(applied.changes)} change(s), {count} key(s), nothing written\n")
    else:
        out.write(f"revision {applied.revision}: {len(applied.changes)} change(s)\n")
        out.write(f"keys: {keys} new key(s) stored\n")
    return 0


def _import_keys(store: Store, keys: dict[str, list[str]], expiry: dict[str, datetime]) -> int:
    """Store the imported consumers' keys right after the apply; return how many were new.

    Keys live in their own table, written through the key store (encryption, the
    lookup hash, its own revision), not through `Store.apply`, so they are one
    transaction (for every consumer at once) after the apply's. Keys a consumer
    already has are skipped, so re-importing a file is harmless.
    """
    return store.keys.import_new_many(keys, CLI_ACTOR, expiry) if keys else 0
