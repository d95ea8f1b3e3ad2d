"""A service `url` is parsed once, at input; translation reuses the parts."""

from unittest import mock

import pytest
from pydantic import ValidationError

from turnout.models import service as service_module
from turnout.models.service import ServiceSpec
from turnout.xds.translate.cluster import build_cluster


def test_translation_does_not_split_the_url_again() -> None:
    spec = ServiceSpec(name="parsed-once", url="https://parsed-once.internal:8443")
    with mock.patch.object(service_module, "urlsplit", side_effect=AssertionError("re-parsed")):
        build_cluster(spec)
        again = ServiceSpec.model_validate(spec.model_dump())  # e.g. read back from a row
        assert again.parsed_url is spec.parsed_url
    assert spec.parsed_url is not None
    assert (spec.parsed_url.scheme, spec.parsed_url.host, spec.parsed_url.port) == (
        "https",
        "parsed-once.internal",
        8443,
    )


def test_a_bad_url_names_the_field_every_time() -> None:
    for _ in range(2):  # a failure is not remembered as a success
        with pytest.raises(ValidationError) as caught:
            ServiceSpec(name="bad", url="http://bad.internal/path")
        (error,) = caught.value.errors()
        assert error["loc"] == ("url",)
        assert "no path" in error["msg"]
