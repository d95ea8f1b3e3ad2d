"""Route auth translation details that golden files show less directly."""

import re2
from envoy.extensions.filters.http.api_key_auth.v3.api_key_auth_pb2 import (
    ApiKeyAuth,
    Credential,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.models.consumer import ConsumerSpec
from turnout.models.declaration import Declaration
from turnout.models.key import ApiKey
from turnout.models.route import RouteSpec
from turnout.models.route_auth import KeySource, RouteAuth
from turnout.models.service import ServiceSpec
from turnout.xds.translate.api_key_auth import (
    NOBODY,
    allowed_clients,
    build_api_key_auth_config,
    path_key_regex,
    path_key_rewrite,
    serialized_api_key_auth_config,
)
from turnout.xds.translate.credentials import forget_credentials, serialized_credentials


def test_hand_encoded_credentials_equal_protobuf_bytes() -> None:
    keys = (
        ApiKey("a", "alice", "k" * 20),
        ApiKey("b", "bob", "long-" + "x" * 300),  # multi-byte varint lengths
        ApiKey("c", "c" * 128, "tk_" + "y" * 43),
    )
    expected = ApiKeyAuth(
        credentials=[Credential(key=k.key, client=k.consumer) for k in keys]
    ).SerializeToString(deterministic=True)
    assert serialized_credentials(keys) == expected
    # A new tuple with one more key reuses the others' bytes and still matches.
    more = (*keys, ApiKey("d", "dan", "z" * 16))
    assert serialized_credentials(more) == ApiKeyAuth(
        credentials=[Credential(key=k.key, client=k.consumer) for k in more]
    ).SerializeToString(deterministic=True)


def _from_scratch(keys: tuple[ApiKey, ...]) -> bytes:
    return ApiKeyAuth(
        credentials=[Credential(key=k.key, client=k.consumer) for k in keys]
    ).SerializeToString(deterministic=True)


# A key list change: add `count` keys at id `at`, or revoke `count` keys from index `at`.
_changes = st.lists(
    st.tuples(st.sampled_from(["add", "revoke"]), st.integers(0, 3000), st.integers(1, 1200)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(_changes)
def test_spliced_credential_blocks_equal_a_serialization_from_scratch(
    changes: list[tuple[str, int, int]],
) -> None:
    """Blocks kept across changes (added, revoked, grown past a re-cut) still give
    exactly protobuf's bytes for the whole list, every step."""
    forget_credentials()
    keys = tuple(ApiKey(f"{i * 2:06d}", f"c{i % 7}", f"key-{i:06d}-long") for i in range(1500))
    assert serialized_credentials(keys) == _from_scratch(keys)
    serial = 0
    for op, at, count in changes:
        if op == "add":
            serial += 1
            extra = [
                ApiKey(f"{at:06d}.{serial}.{n:04d}", "new", f"k{serial}-{n}") for n in range(count)
            ]
            keys = tuple(sorted((*keys, *extra), key=lambda k: k.id))
        else:
            keys = keys[:at] + keys[at + count :]
        assert serialized_credentials(keys) == _from_scratch(keys)


def test_credentials_out_of_id_order_are_still_the_whole_list_in_order() -> None:
    """Reuse relies on keys by id; correctness does not (the store's order could differ)."""
    forget_credentials()
    keys = tuple(ApiKey(f"{i:05d}", "c", f"key-{i:05d}-long") for i in range(2000))
    assert serialized_credentials(keys) == _from_scratch(keys)
    shuffled = keys[1500:] + keys[:700] + keys[1000:1500] + keys[700:1000]
    assert serialized_credentials(shuffled) == _from_scratch(shuffled)
    assert serialized_credentials(keys[::-1]) == _from_scratch(keys[::-1])


def test_spliced_extension_config_equals_the_message_serialized() -> None:
    """The ECDS resource written as bytes is the message's deterministic bytes,
    with no key too (an empty `value` is left out)."""
    forget_credentials()
    for keys in ((), (ApiKey("a", "alice", "k" * 20), ApiKey("b", "b" * 200, "x" * 300))):
        decl = Declaration(revision=1, api_keys=keys)
        expected = build_api_key_auth_config(decl).SerializeToString(deterministic=True)
        assert serialized_api_key_auth_config(decl) == expected


def test_every_group_receives_the_credentials() -> None:
    """Even a group with no authenticated route: emptying its list when its last one
    goes would reach Envoy (ECDS) before the route change (RDS)."""
    keys = (ApiKey("a", "alice", "k" * 20),)
    decl = Declaration(
        revision=1,
        services={"s": ServiceSpec(name="s", url="http://10.0.0.1:80")},
        routes={"open": RouteSpec(name="open", paths=["/o"], service="s", groups=["public"])},
        consumers={"alice": ConsumerSpec(name="alice")},
        api_keys=keys,
    )
    config = ApiKeyAuth()
    assert build_api_key_auth_config(decl).typed_config.Unpack(config)
    assert [(c.key, c.client) for c in config.credentials] == [("k" * 20, "alice")]


def test_allowed_clients_expand_groups_and_never_mean_everyone() -> None:
    decl = Declaration(
        revision=1,
        consumers={
            "a": ConsumerSpec(name="a", groups=["free"]),
            "b": ConsumerSpec(name="b", groups=["paid"]),
            "c": ConsumerSpec(name="c", groups=["free", "paid"]),
        },
    )
    assert allowed_clients(RouteAuth(), decl) == []
    assert allowed_clients(RouteAuth(allow_groups=["free"]), decl) == ["a", "c"]
    assert allowed_clients(RouteAuth(allow_groups=["paid"], allow_consumers=["a"]), decl) == [
        "a",
        "b",
        "c",
    ]
    assert allowed_clients(RouteAuth(allow_groups=["gone"]), decl) == [NOBODY]


def _extract(template: str, path: str) -> str | None:
    match = re2.match(path_key_regex(KeySource(path=template)), path)
    return match.group(1) if match else None


def _rewrite(template: str, path: str) -> str:
    rewrite = path_key_rewrite(KeySource(path=template))
    substitution = rewrite.substitution.replace("\\\\", "\\")
    return re2.sub(rewrite.pattern.regex, substitution.replace("\\", "\\\\"), path, count=1)


def test_path_templates_extract_and_remove_the_key_segment() -> None:
    assert _extract("/forecast/{key}", "/forecast/K123/today?d=1") == "K123"
    assert _extract("/forecast/{key}", "/forecast/K123?d=1") == "K123"
    assert _extract("/forecast/{key}", "/forecast/K123") == "K123"
    assert _extract("/forecast/{key}", "/forecast") is None
    assert _extract("/forecast/{key}", "/forecastX/K123") is None
    assert _extract("/v1/{key}/daily", "/v1/K9/daily/x") == "K9"
    assert _extract("/v1/{key}/daily", "/v1/K9/weekly") is None
    assert _extract("/{key}", "/K7/x") == "K7"
    assert _rewrite("/forecast/{key}", "/forecast/K123/today") == "/forecast/today"
    assert _rewrite("/forecast/{key}", "/forecast/K123") == "/forecast"
    assert _rewrite("/v1/{key}/daily", "/v1/K9/daily/x") == "/v1/daily/x"
    assert _rewrite("/{key}", "/K7/x") == "/x"
    assert _rewrite("/{key}", "/K7") == "/"
