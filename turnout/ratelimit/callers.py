"""Which callers may ask the rate limit service: an allow-list of certificate names.

The same YAML as xDS's `--xds-allow-list` (turnout/xds/identity.py), with only
`names` (globs over the certificate's CN and SANs, and the node id of a
`spiffe://turnout/node/<id>` URI): a rate limit call claims no node, so rules with
`node_ids` or `node_clusters` are refused when the file is loaded.

    - names: ["edge-*", "gateway-1"]

Without an allow-list, any certificate the client CA signed may call.
"""

import fnmatch
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from turnout.xds.identity import AllowList


def load_allow_list(path: Path) -> Callable[[Sequence[str]], str | None]:
    """A check for `RateLimitServer(allow=...)`; ValueError names what is wrong."""
    try:
        rules = AllowList.parse(yaml.safe_load(path.read_text()), str(path)).rules
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"--client-allow-list: cannot read {path}: {exc}") from None
    for i, rule in enumerate(rules):
        if rule.node_ids or rule.node_clusters:
            raise ValueError(
                f"{path}: rule {i}: node_ids and node_clusters do not apply to rate limit "
                "callers (a rate limit call claims no node); use names only"
            )
    globs = [g for rule in rules for g in rule.names]

    def check(names: Sequence[str]) -> str | None:
        if not names:
            return "no client certificate (the allow-list needs one)"
        if any(fnmatch.fnmatchcase(n, g) for n in names for g in globs):
            return None
        return f"certificate {list(names)} is not in the rate limit allow-list"

    return check
