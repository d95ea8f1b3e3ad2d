"""Golden-file tests of `turnout.xds.translate`: one case per `testdata/in/<case>.yaml`.

Run with `--update-golden` to rewrite `testdata/out/` and delete stale files;
review the YAML diff like code. The cases and the flag live in `conftest.py`.
"""

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

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


def test_golden(golden_case: "GoldenCase", update_golden: bool) -> None:
    decl, opts = golden_case.load()
    resources = build_resources(decl, opts)

    if golden_case.expected_error is None:
        check_consistent(resources)
    else:
        with pytest.raises(TranslationError, match=re.escape(golden_case.expected_error)):
            check_consistent(resources)

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
