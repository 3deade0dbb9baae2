"""Property-based fuzzing of the whole public API from its own OpenAPI document (issue 7).

Schemathesis reads ``/openapi.json`` from the app (in process, over ASGI), generates requests
for every operation, authenticated with the demo API key, and checks two things for each
response:

* ``not_a_server_error``: no 5xx, whatever the input (a 5xx is a bug: bad input must be a 4xx
  problem+json);
* ``response_schema_conformance``: where an operation declares a response model, the body
  matches it (see docs/security.md for which operations declare one; for the others this check
  is vacuous).

Bounded: a few examples per operation, no deadline, so the run stays well under three minutes
on two cores. ``/sandbox/*`` (embedded demo only), ``/static`` and the interactive docs are
left out; they have no parsers of their own.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.app import create_app
from api.demo import DEMO_API_KEY, seed
from settings.config import Settings

schemathesis.experimental.OPEN_API_3_1.enable()  # FastAPI emits OpenAPI 3.1

MAX_EXAMPLES = 20
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}


@pytest.fixture
def fuzz_schema(settings: Settings) -> Any:
    seed(settings)
    app = create_app(settings)
    return schemathesis.from_asgi("/openapi.json", app).exclude(
        path_regex=r"^/(sandbox|static|docs|redoc)"
    )


schema = schemathesis.from_pytest_fixture("fuzz_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_api_never_fails_and_matches_its_schema(case: Any) -> None:
    headers = dict(case.headers or {})
    headers.setdefault("Authorization", AUTH["Authorization"])
    case.call_and_validate(
        headers=headers, checks=(not_a_server_error, response_schema_conformance)
    )
