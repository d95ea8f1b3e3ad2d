"""Golden-file tests of `turnout.xds.translate`: one case per `testdata/in/<case>.yaml`.

Each case runs through `translate` (what proxies are served), and its bytes must
equal `build_resources`' (the translation from scratch).

Run with `--update-golden` to rewrite `testdata/out/` and delete stale files;
review the YAML diff like code. The cases and the flag live in `conftest.py`.
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.extension_pb2 import TypedExtensionConfig
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from turnout.xds.memo import TranslationMemo
from turnout.xds.snapshot import pack
from turnout.xds.translate import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    TranslationError,
    build_resources,
    check_consistent,
)
from turnout.xds.translate.pipeline import Translation, translate

if TYPE_CHECKING:
    from conftest import GoldenCase

OUTPUTS = {
    CLUSTER_TYPE: "clusters",
    ENDPOINT_TYPE: "endpoints",
    EXTENSION_CONFIG_TYPE: "extension_configs",
    LISTENER_TYPE: "listeners",
    ROUTE_TYPE: "routes",
}


def _plain(value: object) -> object:
    """OrderedDicts (MessageToDict uses them for `Any`) → dicts, which YAML can dump."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_yaml(messages: list[Message]) -> str:
    """Protobuf JSON mapping (typed `Any` expanded with `@type`) as YAML."""
    dicts = [_plain(MessageToDict(m, preserving_proto_field_name=True)) for m in messages]
    return yaml.safe_dump(dicts, sort_keys=False, default_flow_style=False)


MESSAGE_CLASSES: dict[str, type[Message]] = {
    CLUSTER_TYPE: Cluster,
    ENDPOINT_TYPE: ClusterLoadAssignment,
    EXTENSION_CONFIG_TYPE: TypedExtensionConfig,
    LISTENER_TYPE: Listener,
    ROUTE_TYPE: RouteConfiguration,
}


def served_messages(served: Translation) -> dict[str, list[Message]]:
    """The served, packed resources as messages."""
    out: dict[str, list[Message]] = {}
    for type_url, packed in served.packed.items():
        out[type_url] = []
        for p in packed:
            message = MESSAGE_CLASSES[type_url]()
            assert p.any.Unpack(message)
            out[type_url].append(message)
    return out


def test_golden(golden_case: "GoldenCase", update_golden: bool) -> None:
    decl, opts = golden_case.load()
    from_scratch = build_resources(decl, opts)

    if golden_case.expected_error is None:
        served = translate(decl, opts, TranslationMemo())
        check_consistent(from_scratch)
        resources = served_messages(served)
        # Served bytes are the from-scratch translation's, resource by resource.
        for type_url, messages in from_scratch.items():
            expected = [pack(m) for m in messages]
            assert [(p.name, p.any.value) for p in served.packed[type_url]] == [
                (p.name, p.any.value) for p in expected
            ], type_url
    else:
        # Nothing is served: the same check refuses it on both paths.
        with pytest.raises(TranslationError, match=re.escape(golden_case.expected_error)):
            translate(decl, opts, TranslationMemo())
        with pytest.raises(TranslationError, match=re.escape(golden_case.expected_error)):
            check_consistent(from_scratch)
        resources = from_scratch

    for type_url, kind in OUTPUTS.items():
        path = golden_case.out_path(kind)
        actual = to_yaml(resources[type_url])
        if update_golden:
            path.write_text(actual)
            continue
        assert path.exists(), f"{path} is missing: run pytest with --update-golden"
        assert yaml.safe_load(actual) == yaml.safe_load(path.read_text()), (
            f"{path} differs: run pytest with --update-golden and review the diff"
        )


def test_no_stale_golden_files(stale_golden_files: list[Path], update_golden: bool) -> None:
    if update_golden:
        pytest.skip("--update-golden deletes stale files at the end of the session")
    assert not stale_golden_files, f"stale golden files (run --update-golden): {stale_golden_files}"
