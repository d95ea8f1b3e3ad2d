"""Each entity spec validates itself and names the field and reason when it refuses."""

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from turnout.models.route import PathKind, RouteSpec
from turnout.models.service import ServiceSpec
from turnout.models.split import SplitSpec


def _error(spec: type[BaseModel], data: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as info:
        spec.model_validate(data)
    first = info.value.errors()[0]
    return first["loc"], first["msg"]


class TestServiceSpec:
    def test_url_or_endpoints(self) -> None:
        assert (
            ServiceSpec(name="a", url="http://10.0.0.5:8080").resolved_endpoints()[0].port == 8080
        )
        spec = ServiceSpec.model_validate(
            {"name": "a", "endpoints": [{"address": "backend.internal", "port": 80, "weight": 3}]}
        )
        assert spec.endpoints is not None and spec.endpoints[0].weight == 3

    @pytest.mark.parametrize(
        ("data", "loc", "reason"),
        [
            ({"name": "a"}, (), "exactly one of `url` or `endpoints`"),
            (
                {"name": "a", "url": "http://x", "endpoints": [{"address": "x", "port": 1}]},
                (),
                "exactly one of `url` or `endpoints`",
            ),
            ({"name": "a", "url": "ftp://x"}, ("url",), "scheme must be http or https"),
            ({"name": "a", "url": "http://x/path"}, ("url",), "no path"),
            ({"name": "-a", "url": "http://x"}, ("name",), "pattern"),
            ({"name": "a", "endpoints": []}, ("endpoints",), "at least 1"),
            (
                {"name": "a", "endpoints": [{"address": "bad_host!", "port": 1}]},
                ("endpoints", 0, "address"),
                "neither an IP address nor a valid DNS name",
            ),
            (
                {"name": "a", "endpoints": [{"address": "x", "port": 70000}]},
                ("endpoints", 0, "port"),
                "less than or equal to 65535",
            ),
            ({"name": "a", "url": "http://x", "timeout": 1}, ("timeout",), "Extra inputs"),
            ({"name": "a", "url": "http://x", "tags": ["a b"]}, ("tags", 0), "pattern"),
            (
                {
                    "name": "a",
                    "url": "http://x",
                    "policies": {"outlier_detection": {"consecutive_local_origin_failure": 2}},
                },
                ("policies", "outlier_detection"),
                "needs split_local_origin_errors: true",
            ),
            (
                {
                    "name": "a",
                    "url": "http://x",
                    "policies": {"outlier_detection": {"consecutive_5xx": 0}},
                },
                ("policies", "outlier_detection"),
                "ejects nothing",
            ),
            (
                {
                    "name": "a",
                    "url": "http://x",
                    "policies": {"outlier_detection": {"consecutive_gateway_failure": 0}},
                },
                ("policies", "outlier_detection", "consecutive_gateway_failure"),
                "greater than or equal to 1",
            ),
        ],
    )
    def test_rejects(self, data: dict[str, Any], loc: tuple[Any, ...], reason: str) -> None:
        got_loc, msg = _error(ServiceSpec, data)
        assert got_loc == loc
        assert reason in msg


class TestRouteSpec:
    def test_path_shorthands(self) -> None:
        spec = RouteSpec.model_validate(
            {
                "name": "r",
                "service": "s",
                "paths": ["/api", {"exact": "/x"}, {"regex": "^/v[0-9]+/"}],
            }
        )
        assert [p.kind for p in spec.paths] == [PathKind.PREFIX, PathKind.EXACT, PathKind.REGEX]

    def test_normalizes_hosts_and_headers(self) -> None:
        spec = RouteSpec(name="r", service="s", hosts=["API.example.com"], headers={"X-Env": "1"})
        assert spec.hosts == ["api.example.com"]
        assert spec.headers == {"x-env": "1"}

    @pytest.mark.parametrize(
        ("data", "loc", "reason"),
        [
            ({"name": "r"}, ("service",), "Field required"),
            ({"name": "r", "service": "s", "paths": ["api"]}, ("paths", 0), "must start with '/'"),
            ({"name": "r", "service": "s", "paths": [{"regex": "(?<=x)"}]}, ("paths", 0), "RE2"),
            ({"name": "r", "service": "s", "hosts": ["a..b"]}, ("hosts", 0), "not a host name"),
            ({"name": "r", "service": "s", "methods": ["FETCH"]}, ("methods", 0), "pattern"),
            ({"name": "r", "service": "s", "methods": ["GET", "GET"]}, ("methods",), "repeat"),
            (
                {"name": "r", "service": "s", "headers": {":path": "/"}},
                ("headers", ":path", "[key]"),
                "header",
            ),
            ({"name": "r", "service": "s", "priority": 5000}, ("priority",), "less than"),
            (
                {"name": "r", "service": "s", "strip_path": True, "paths": [{"exact": "/x"}]},
                (),
                "strip_path works with prefix paths only",
            ),
        ],
    )
    def test_rejects(self, data: dict[str, Any], loc: tuple[Any, ...], reason: str) -> None:
        got_loc, msg = _error(RouteSpec, data)
        assert got_loc == loc
        assert reason in msg


class TestSplitSpec:
    def test_zero_weight_target_allowed(self) -> None:
        spec = SplitSpec.model_validate(
            {
                "name": "x",
                "route": "r",
                "targets": [{"service": "a", "weight": 0}, {"service": "b", "weight": 1}],
            }
        )
        assert [t.weight for t in spec.targets] == [0, 1]

    @pytest.mark.parametrize(
        ("data", "loc", "reason"),
        [
            ({"name": "x", "route": "r", "targets": []}, ("targets",), "at least 1"),
            (
                {"name": "x", "route": "r", "targets": [{"service": "a", "weight": 0}]},
                (),
                "at least one target needs a weight above 0",
            ),
            (
                {
                    "name": "x",
                    "route": "r",
                    "targets": [{"service": "a", "weight": 1}, {"service": "a", "weight": 1}],
                },
                (),
                "each service once",
            ),
            (
                {"name": "x", "route": "r", "targets": [{"service": "a", "weight": -1}]},
                ("targets", 0, "weight"),
                "greater than or equal to 0",
            ),
        ],
    )
    def test_rejects(self, data: dict[str, Any], loc: tuple[Any, ...], reason: str) -> None:
        got_loc, msg = _error(SplitSpec, data)
        assert got_loc == loc
        assert reason in msg
