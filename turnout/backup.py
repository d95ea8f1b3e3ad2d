"""`turnout backup | restore | verify`: a database moved to a new cluster, proven equal.

A backup file (JSON) holds what `Store.export` reads (revision, entities, audit
trail, freezes) plus the sha256 of every xDS resource the declaration translates
to. `verify` translates the database's declaration again and compares it, byte for
byte, with the file's declaration translated now and with the digests recorded at
backup time: equal bytes mean every Envoy would be served exactly the same.

Lives beside `serve.py` because it is the one other place that joins the
declaration (`models`) to the translation (`xds`).
"""

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from turnout.models.declaration import Declaration
from turnout.models.entities import ENTITIES
from turnout.models.errors import TurnoutError
from turnout.models.store import Store
from turnout.xds.translate import ListenerOptions, build_resources, resource_name

FORMAT_VERSION = "1"
KIND = "turnout-backup"


def xds_digests(decl: Declaration, opts: ListenerOptions | None = None) -> dict[str, str]:
    """`<type_url>/<name>` -> sha256 of the resource's deterministic bytes."""
    resources = build_resources(decl, opts or ListenerOptions())
    return {
        f"{type_url}/{resource_name(msg)}": hashlib.sha256(
            msg.SerializeToString(deterministic=True)
        ).hexdigest()
        for type_url, msgs in resources.items()
        for msg in msgs
    }


def _declaration(data: dict[str, Any]) -> Declaration:
    specs = {
        ent.plural: {
            item["name"]: ent.spec.model_validate(item) for item in data.get(ent.plural, [])
        }
        for ent in ENTITIES.values()
    }
    return Declaration(revision=int(data["revision"]), **specs)  # type: ignore[arg-type]


def backup(store: Store, path: str, out: TextIO) -> int:
    data = store.export()
    document = {
        "_format_version": FORMAT_VERSION,
        "kind": KIND,
        **data,
        "xds_sha256": xds_digests(_declaration(data)),
    }
    Path(path).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    out.write(
        f"backup of revision {data['revision']} written to {path}: "
        + ", ".join(f"{len(data[e.plural])} {e.plural}" for e in ENTITIES.values())
        + f", {len(data['audit'])} audit events, {len(data['freezes'])} freezes\n"
    )
    return 0


def _load(path: str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text())
    if data.get("kind") != KIND or data.get("_format_version") != FORMAT_VERSION:
        raise ValueError(f"{path} is not a Turnout backup (format {FORMAT_VERSION})")
    return dict(data)


def restore(store: Store, path: str, out: TextIO, *, force: bool) -> int:
    try:
        revision = store.restore(_load(path), force=force)
    except (TurnoutError, ValueError) as exc:
        hint = " (use --force to replace everything)" if "not empty" in str(exc) else ""
        print(f"turnout restore: {exc}{hint}; nothing changed", file=sys.stderr)
        return 1
    out.write(f"restored revision {revision} from {path}\n")
    return 0


def verify(store: Store, path: str, out: TextIO) -> int:
    """0 when the database translates to exactly the backup's xDS bytes, else 1."""
    data = _load(path)
    recorded: dict[str, str] = data["xds_sha256"]
    from_file = xds_digests(_declaration(data))
    decl = store.load()
    from_db = xds_digests(decl)
    problems = []
    if decl.revision != data["revision"]:
        problems.append(f"revision {decl.revision} != backup's {data['revision']}")
    for label, digests in (("backup's declaration", from_file), ("database", from_db)):
        if digests != recorded:
            differing = sorted(set(digests.items()) ^ set(recorded.items()))
            names = sorted({k for k, _ in differing})
            problems.append(f"{label} differs from the recorded xDS in: {', '.join(names)}")
    if problems:
        for problem in problems:
            print(f"turnout verify: {problem}", file=sys.stderr)
        return 1
    out.write(
        f"verified: revision {decl.revision}, {len(from_db)} xDS resources byte-identical "
        "to the backup\n"
    )
    return 0
