"""RE2 regexes as Envoy compiles them: the check, and every regex translation builds.

Envoy compiles each `safe_regex` with RE2 and refuses one whose compiled program is
larger than the runtime key `re2.max_program_size.error_level` (default 100). So
the admin API refuses what Envoy would: a user's regex, and also a regex that
translation builds from user input (a stripped prefix, a cookie pin, a path key
template). The builders live here, next to the check, and translation
(`turnout/xds/translate/`) calls them: validation and translation cannot disagree.
"""

import re2

from turnout.models.types import check_utf8

MAX_REGEX_PROGRAM_SIZE = 100
"""Envoy's default `re2.max_program_size.error_level`."""

_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def re2_escape(text: str) -> str:
    """Quote `text` for RE2 (Python's `re.escape` may emit escapes RE2 rejects)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def compile_checked(pattern: str, what: str = "regex") -> "re2._Regexp":
    """`pattern` compiled, or ValueError naming the reason Envoy would refuse it."""
    check_utf8(pattern)
    try:
        compiled = re2.compile(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise ValueError(f"invalid RE2 {what} {pattern!r}: {reason}") from None
    if compiled.programsize > MAX_REGEX_PROGRAM_SIZE:
        raise ValueError(
            f"{what} {pattern!r} is too complex for Envoy: RE2 program size "
            f"{compiled.programsize} > {MAX_REGEX_PROGRAM_SIZE}"
        )
    return compiled


def check_regex(pattern: str) -> None:
    """Raise ValueError unless `pattern` compiles under RE2 as Envoy compiles it."""
    compile_checked(pattern)


def methods_regex(methods: list[str]) -> str:
    """The `:method` matcher of a route with several methods (sorted)."""
    return f"^({'|'.join(sorted(methods))})$"


def strip_prefix_regex(prefix: str) -> str:
    """`strip_path` on prefix P: `^P/?` replaced by `/`."""
    return f"^{re2_escape(prefix)}/?"


def cookie_pair_regex(name: str, value: str) -> str:
    """A `cookie` header holding the pair `name=value` as one whole cookie."""
    return f"^(.*;\\s*)?{re2_escape(name)}={re2_escape(value)}(;.*)?$"


def path_key_regex(prefix: str, suffix: str) -> str:
    """The whole `:path` (query included) of a path key template, capturing the key as \\1."""
    return f"^{re2_escape(prefix)}/([^/?]+){re2_escape(suffix)}(?:[/?].*)?$"


def path_key_strip_regex(prefix: str, suffix: str) -> str:
    """What the route rewrites away: the key segment between `prefix` and `suffix`."""
    if not prefix and not suffix:
        return "^/[^/]+/?"
    return f"^{re2_escape(prefix)}/[^/]+{re2_escape(suffix)}"


def check_substitution(substitution: str, groups: int) -> None:
    """Raise ValueError unless `substitution` is a valid RE2 rewrite for `groups` groups.

    RE2 (`RE2::Rewrite`) knows `\\0`..`\\9` and `\\\\`; Envoy does not check the string
    when it loads it, so a bad one would fail on every request instead.
    """
    i = 0
    while i < len(substitution):
        if substitution[i] == "\\":
            nxt = substitution[i + 1 : i + 2]
            if nxt == "\\":
                i += 2
                continue
            if not nxt.isdigit() or not nxt.isascii():
                raise ValueError(
                    "a '\\' in substitution must be followed by a group number 0-9 or '\\'"
                )
            if int(nxt) > groups:
                raise ValueError(
                    f"substitution refers to group \\{nxt}, but the regex has {groups} group(s)"
                )
            i += 2
            continue
        i += 1
