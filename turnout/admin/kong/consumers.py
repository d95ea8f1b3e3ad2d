"""Kong consumers → Turnout consumers, their keys and their groups.

- `username` (else `custom_id`) → the name; `tags` → tags; `id` → `kong_id` and
  `custom_id` → `custom_id`, which routes with `auth.kong_consumer_headers` send
  upstream as `X-Consumer-ID` and `X-Consumer-Custom-ID`, as Kong does;
- `acls` (Kong acl groups) → `groups`, which routes' `allow_groups` name;
- `keyauth_credentials` → the consumer's keys, kept in clear for the importer to
  store through the key store's import path (`KeyRing.import_new`), with a
  credential's `ttl` as the key's expiry;
- its own `rate-limiting` plugin → the consumer's `limits`.

Keys never reach the report: a key that Turnout cannot store is named by its
position only.
"""

import re
from datetime import datetime, timedelta
from typing import Any

from turnout.admin.kong.plugins import windows
from turnout.admin.kong.report import KongImport, name_of, tags_of, unknown_fields
from turnout.models.consumer import MAX_KONG_VALUE
from turnout.models.key import KEY_PATTERN

_KEY = re.compile(KEY_PATTERN)
_HEADER_VALUE = re.compile(rf"^[!-~](?:[ -~]{{0,{MAX_KONG_VALUE - 2}}}[!-~])?$")
_FIELDS = {"id", "username", "custom_id", "tags", "keyauth_credentials", "acls", "plugins"}
_FIELDS |= {"created_at", "updated_at", "basicauth_credentials", "jwt_secrets"}
_FIELDS |= {"hmacauth_credentials", "groups"}
_CREDENTIAL_FIELDS = {"id", "key", "ttl", "tags", "created_at", "consumer"}


def convert_consumers(doc: dict[str, Any], out: KongImport, now: datetime) -> None:
    """Every consumer of `doc` into `out` (consumers first: routes' acls need them)."""
    for item in doc.get("consumers") or []:
        who = item.get("username") or item.get("custom_id")
        if not who:
            out.not_mapped.append("a consumer with neither username nor custom_id skipped")
            continue
        name = name_of(str(who))
        data, keys = _consumer(item, name, out, now)
        if out.add("consumer", data, f"consumer {who}") and keys:
            out.keys[name] = keys
            out.imported.append(f"consumer {name}: {len(keys)} key(s), kept out of this report")


def _consumer(
    item: dict[str, Any], name: str, out: KongImport, now: datetime
) -> tuple[dict[str, Any], list[str]]:
    origin = f"consumer {name}"
    unknown_fields(item, _FIELDS, {}, origin, out)
    data: dict[str, Any] = {"name": name, "tags": tags_of(item)}
    groups = sorted({name_of(str(a.get("group", ""))) for a in item.get("acls") or []})
    if groups:
        data["groups"] = groups
    # Kong sends both upstream (X-Consumer-ID, X-Consumer-Custom-ID); kept when they
    # fit a header value.
    for field, key in (("id", "kong_id"), ("custom_id", "custom_id")):
        value = item.get(field)
        if value is None:
            continue
        if isinstance(value, str) and _HEADER_VALUE.match(value):
            data[key] = value
        else:
            out.not_mapped.append(
                f"{origin}: {field} not kept (not a header value of at most "
                f"{MAX_KONG_VALUE} visible ASCII characters)"
            )
    if "kong_id" not in data:
        out.once(
            "consumers without an id in the file: no X-Consumer-ID upstream (Kong sends "
            "the id it generated; export with `deck gateway dump --with-id` to keep it)"
        )
    for plugin in item.get("plugins") or []:
        if not plugin.get("enabled", True):
            continue
        if plugin.get("name") == "rate-limiting":
            conf = plugin.get("config") or {}
            limits = windows(conf, fleet=conf.get("policy") in ("redis", "cluster"))
            if limits["burst"] or limits["quota"]:
                data["limits"] = limits
                out.imported.append(f"{origin}: limits from its rate-limiting plugin")
        else:
            out.not_mapped.append(f"plugin {plugin.get('name', '?')} on {origin}: not mapped")
    keys: list[str] = []
    for i, cred in enumerate(item.get("keyauth_credentials") or []):
        key = cred.get("key")
        unknown_fields(cred, _CREDENTIAL_FIELDS, {}, f"{origin}: keyauth_credentials[{i}]", out)
        if not isinstance(key, str) or not _KEY.match(key):
            # Never print the key, not even a prefix: name it by position.
            out.not_mapped.append(
                f"{origin}: keyauth_credentials[{i}] not imported "
                "(Turnout keys are 16-256 of A-Z a-z 0-9 . _ ~ + = -)"
            )
        elif key in keys:
            out.not_mapped.append(f"{origin}: keyauth_credentials[{i}] repeats a key; once")
        else:
            keys.append(key)
            if cred.get("ttl"):
                # A Kong file states the seconds left; they count from the import.
                out.expiry[key] = (now + timedelta(seconds=int(cred["ttl"]))).replace(microsecond=0)
                out.imported.append(f"{origin}: keyauth_credentials[{i}] expires at its ttl")
    for other in ("basicauth_credentials", "jwt_secrets", "hmacauth_credentials", "groups"):
        if item.get(other):
            out.not_mapped.append(f"{origin}: {other} not mapped")
    return data, keys
