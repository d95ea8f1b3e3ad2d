"""Schemathesis against the admin API's own OpenAPI document, with an admin token:
no request it generates gets a 5xx, and every status answered is documented.

In-process (the ASGI app) on a throwaway SQLite database, since the generated
requests write. Valid and invalid requests, a few examples per operation, so the
run stays within a couple of minutes on a loaded machine. Schemathesis's pytest
wrapper is not used: its lazy loader does not run on pytest 9.
"""

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from tests.admin.conftest import PROXY, TOKEN, FixedProxies
from turnout.admin.app import create_app
from turnout.storage.store import Store

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 20
"""Per operation and generation mode."""


@pytest.fixture
def api_schema(database_url: str) -> Iterator[schemathesis.BaseSchema]:
    store = Store(database_url, secret_key="fuzz-test-secret-key")
    app = create_app(store, FixedProxies([PROXY]), admin_token=TOKEN)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    store.close()


def _run(operation: schemathesis.APIOperation, mode: GenerationMode, answered: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers=AUTH, checks=[not_a_server_error, status_code_conformance]
        )
        answered.append(response.status_code)

    check()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_5xx_and_every_status_documented(api_schema: schemathesis.BaseSchema) -> None:
    failures: list[str] = []
    answered: list[int] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 40
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode, answered)
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing to get wrong: no inputs
            except BaseException as exc:  # schemathesis raises groups: collect, fail once
                if isinstance(exc, KeyboardInterrupt):
                    raise
                name = f"{operation.method.upper()} {operation.path}"
                failures.append(f"{name} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the handlers, not only the validation in front of them.
    assert len(answered) > 20 * len(operations)
    assert {200, 201, 204, 404, 422} <= set(answered), sorted(set(answered))
