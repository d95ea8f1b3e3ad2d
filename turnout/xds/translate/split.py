"""A split's pins and stickiness → extra route entries and a hash policy.

Owns what a split adds to a route entry beyond its weights; `route.py` builds the
entry (match + weighted action) and passes it here.

Pins: each pin becomes its own route entry placed right BEFORE the weighted one,
with the same match plus one more condition, and a plain `cluster` action. Envoy
takes the first matching entry, so a pinned request never reaches the weighted
choice, whatever the target's weight (0 included: its cluster always exists).
- header pin → `HeaderMatcher(name, exact value)`;
- cookie pin → a `cookie` header matcher with an RE2 regex matching `name=value`
  as one whole cookie pair (Envoy has no cookie matcher on routes).
Pin entry names: `<entry>~pin<i>`, i the pin's index in the split.

Stickiness: `hash_policy` on the action (header or cookie value) and
`weighted_clusters.use_hash_policy: true` (Envoy >= 1.31), so the weighted choice
is made from the request's hash instead of a random number: the same value always
lands on the same target while the weights hold. Requests without the header or
cookie fall back to a random choice.
"""

from envoy.config.route.v3.route_components_pb2 import HeaderMatcher, Route, RouteAction
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher

from turnout.models.split import SplitPin, SplitSpec

_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _re2_escape(text: str) -> str:
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in text)


def pin_matcher(pin: SplitPin) -> HeaderMatcher:
    if pin.header is not None:
        return HeaderMatcher(name=pin.header, string_match=StringMatcher(exact=pin.value))
    pair = f"{_re2_escape(pin.cookie or '')}={_re2_escape(pin.value)}"
    regex = RegexMatcher(regex=f"^(.*;\\s*)?{pair}(;.*)?$")
    return HeaderMatcher(name="cookie", string_match=StringMatcher(safe_regex=regex))


def build_pin_route(weighted: Route, pin: SplitPin, index: int) -> Route:
    route = Route()
    route.CopyFrom(weighted)
    route.name = f"{weighted.name}~pin{index}"
    route.match.headers.append(pin_matcher(pin))
    route.route.ClearField("weighted_clusters")
    route.route.ClearField("hash_policy")
    route.route.cluster = pin.service
    return route


def apply_sticky(weighted: Route, split: SplitSpec) -> None:
    sticky = split.sticky
    if sticky is None:
        return
    policy = RouteAction.HashPolicy()
    if sticky.header is not None:
        policy.header.header_name = sticky.header
    else:
        policy.cookie.name = sticky.cookie or ""
    weighted.route.hash_policy.append(policy)
    weighted.route.weighted_clusters.use_hash_policy.value = True


def split_routes(weighted: Route, split: SplitSpec | None) -> list[Route]:
    """The route entries for one route entry under `split`: pins first, then the split."""
    if split is None:
        return [weighted]
    apply_sticky(weighted, split)
    pins = [build_pin_route(weighted, pin, i) for i, pin in enumerate(split.pins)]
    return [*pins, weighted]
