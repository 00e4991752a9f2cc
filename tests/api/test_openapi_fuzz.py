"""Hostile input, generated from the service's own OpenAPI by schemathesis: no request may get a 500, and
every answer (errors included) must match the schema the operation declares.

The app runs in process (ASGI) on the embedded default with API keys on, once for this module: a run with
a key holding every scope and channel, and a run without any key (every /v1 operation must refuse it).
Examples per operation are bounded (FUZZ_EXAMPLES) so that both runs together take well under a minute.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.main import create_app
from app.settings import Settings
from history.keys import SCOPES, SqlKeyStore
from history.migrate import upgrade
from tests.api.conftest import factory_for

FUZZ_EXAMPLES = int(os.environ.get("NBO_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, response_schema_conformance]
fuzzing = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,  # a shared 2-core machine: timing is not what is tested here
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
    database=None,
)


def fuzz_settings(directory: Path) -> Settings:
    return Settings(
        _env_file=None,
        environment="test",
        auth="keys",
        database_url=f"sqlite+aiosqlite:///{directory / 'history.db'}",
        features_file=None,
        model_dir=directory / "models",
        sqlite_synchronous="normal",  # fsyncs are not what is tested here
    )


# Built at import (cheap: no store is opened before the lifespan, which schemathesis starts at the first
# call and keeps for the process), because the schema must exist when the tests are collected.
# (schemathesis.pytest.from_fixture would avoid that, but 4.32 breaks on pytest 9: `Function._nodeid`.)
_SCRATCH = tempfile.TemporaryDirectory(prefix="nbo-fuzz-")
SETTINGS = fuzz_settings(Path(_SCRATCH.name))
APP = create_app(SETTINGS, service_factory=factory_for(None))
schema = schemathesis.openapi.from_dict(APP.openapi())


async def _create_key(url: str) -> str:
    store = SqlKeyStore(url)
    await store.start()
    try:
        return (await store.create("fuzzer", set(SCOPES), None))[1]
    finally:
        await store.close()


@pytest.fixture(scope="module")
def fuzz_key() -> str:
    """A key with every scope and channel, in the app's (migrated) database."""
    upgrade(SETTINGS.database_url)
    return asyncio.run(_create_key(SETTINGS.database_url))


@schema.parametrize()
@fuzzing
def test_with_a_key_of_every_scope_nothing_is_a_server_error_and_answers_match_the_schema(case, fuzz_key: str):
    case.call_and_validate(app=APP, headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS)


@schema.parametrize()
@fuzzing
def test_without_a_key_every_v1_operation_refuses_and_answers_match_the_schema(case):
    response = case.call_and_validate(app=APP, checks=CHECKS)
    if case.path.startswith("/v1/"):
        # Refused: no key (401), or before any key is looked at: a method the path does not have (405), a
        # body over the limit (413) or not JSON at all (422).
        assert response.status_code in (401, 405, 413, 422), response.text
