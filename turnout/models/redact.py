"""`redact()`: credentials out of anything Turnout shows, logs or stores about a proxy.

API keys are shown once, when they are created; tokens and TLS private keys never.
Yet they travel in what the admin API shows about proxies: the api_key_auth
config sent over ECDS carries every key, and Envoy's rejection text (a NACK) can
quote the resource it refused. Everything that leaves Turnout that way goes
through `redact`, which knows the shapes a secret takes:

- api_key_auth credentials: the `key` of every `{key, client}` pair (JSON), and
  `key: "..."` / `"key": "..."` / `key=...` in text (Envoy quotes protos as text);
- a generated key anywhere: `tk_` followed by its random part;
- PEM private keys (`-----BEGIN ... PRIVATE KEY-----` to its END, or to the end
  of a truncated message) and the fields that hold them (`private_key`,
  `password`, `session_ticket_keys`, a generic secret's `secret`);
- bearer tokens: `Bearer <token>`.

It errs on the side of hiding: a metadata key named `key` in an error message is
hidden too. It is pure, and knows nothing of HTTP or xDS.
"""

import re
from typing import Any

REDACTED = "[redacted]"

SECRET_FIELDS = frozenset({"private_key", "password", "session_ticket_keys", "secret"})
"""JSON fields whose whole value is a secret (Envoy's TLS and generic secrets)."""

_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# `tk_` + the random part; the 8-character prefix the API shows (`tk_Q2x9A`) stays.
_GENERATED_KEY = re.compile(r"\btk_[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# `key: "v"`, `"key": "v"`, `key='v'`, `key=v` (and the secret fields) in text; the
# value is quoted (with escapes) or runs to a space, comma, brace or bracket.
_FIELD = re.compile(
    r"""(?P<name>(?<![\w-])["']?(?:key|api_?key|x-api-key|private_key|password|secret)["']?)"""
    r"""(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|[^\s,;}\]\)]+)""",
)


def redact_text(text: str) -> str:
    """`text` with every credential it quotes replaced by [redacted]."""
    text = _PEM.sub(f"-----BEGIN {REDACTED} PRIVATE KEY-----", text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    text = _FIELD.sub(_field_value, text)
    return _GENERATED_KEY.sub(f"tk_{REDACTED}", text)


def _field_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match['name']}{match['sep']}{quote}{REDACTED}{quote}"


def redact(value: Any) -> Any:
    """A copy of `value` (JSON-like: dicts, lists, strings, numbers) without secrets.

    Strings are redacted as text; in mappings, a credential's `key` (a mapping
    that also has `client`, as api_key_auth's `Credential`) and every field in
    SECRET_FIELDS lose their whole value.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        credential = "key" in value and "client" in value
        return {
            k: REDACTED if k in SECRET_FIELDS or (credential and k == "key") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
