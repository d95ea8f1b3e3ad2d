"""What a NACK says: the one place its text is shortened, read and logged.

A proxy's `error_detail.message` is attacker-sized (a client may send megabytes)
and may quote credentials that travelled in the rejected resource. Every stored or
logged NACK message goes through `nack_text`, so limiting and redaction
(`turnout/models/redact.py`) happen in exactly one function. Reading which resources
Envoy rejected (`pinned_names`, `quoted_fragments`) works on the bounded prefix
`SCAN_LIMIT`, never on the whole message. No I/O; `NackLog` takes its clock.
"""

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.rpc.status_pb2 import Status

from turnout.models.redact import redact_text

NACK_MESSAGE_LIMIT = 1024
"""Characters of a NACK message kept for `GET /proxies` and the log."""
SCAN_LIMIT = 65536
"""Characters of a NACK message searched for the rejected resources' names."""

# Envoy names rejected resources as "... cluster(s) bad: reason, other: reason"
# (cds_api_helper.cc, lds_api.cc) or quotes them ('bad'). Names are Turnout names
# ([A-Za-z0-9._~-]) or its own resource names (turnout_routes_default).
_NAMED = re.compile(r"(?:^|[\s,(\[])([A-Za-z0-9._~-]{1,128}):")
_QUOTED = re.compile(r"'([^'\n]{1,4096})'")
_MIN_FRAGMENT = 3
"""Shorter quoted fragments ('/', 'a') would match nearly any route."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def nack_text(status: Status) -> str:
    """The message to store and log for a NACK: at most `NACK_MESSAGE_LIMIT` chars,
    control characters escaped (a client's newline must not forge log lines), and
    credentials redacted: Envoy's text can quote the rejected resource."""
    message = redact_text(status.message[: NACK_MESSAGE_LIMIT * 2])
    message = message or f"rejected with code {status.code}"
    message = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", message)
    if len(message) <= NACK_MESSAGE_LIMIT and len(status.message) <= NACK_MESSAGE_LIMIT * 2:
        return message
    return message[: NACK_MESSAGE_LIMIT - 24] + f" ... ({len(status.message)} chars)"


def pinned_names(message: str, candidates: Iterable[str]) -> set[str]:
    """Which of `candidates` (the names a rejected response carried) Envoy's message
    names: followed by a colon, or in single quotes."""
    scanned = message[:SCAN_LIMIT]
    mentioned = set(_NAMED.findall(scanned)) | set(_QUOTED.findall(scanned))
    return mentioned & set(candidates)


def quoted_fragments(message: str) -> list[str]:
    """Quoted parts of the message long enough to find the route they come from
    (Envoy quotes the regex it refused: "regex '/v[0-9]+' RE2 program size ...")."""
    return [f for f in _QUOTED.findall(message[:SCAN_LIMIT]) if len(f) >= _MIN_FRAGMENT]


@dataclass
class NackLog:
    """Per stream: log at most `burst` NACKs per `window` seconds, then one summary.
    (One misbehaving Envoy sending 64 KiB messages wrote 97 MiB/s of log.)"""

    clock: Callable[[], float]
    window: float = 10.0
    burst: int = 3
    _window_start: float = field(default=float("-inf"), init=False)
    _logged: int = field(default=0, init=False)
    suppressed: int = field(default=0, init=False)
    """NACKs not logged in the current window (reported when the next one is)."""

    def allow(self) -> tuple[bool, int]:
        """Whether to log this NACK, and how many were suppressed before it."""
        now = self.clock()
        if now - self._window_start >= self.window:
            self._window_start, self._logged = now, 0
        if self._logged >= self.burst:
            self.suppressed += 1
            return False, 0
        self._logged += 1
        suppressed, self.suppressed = self.suppressed, 0
        return True, suppressed
