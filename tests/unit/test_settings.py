"""Settings that cannot work are refused when they are read, with a reason an operator can act on."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_embedded_mode_refuses_several_workers():
    # Each worker would keep its own summaries, budgets and locks: caps would silently stop holding.
    with pytest.raises(ValidationError, match="need NBO_REDIS_URL"):
        Settings(_env_file=None, redis_url=None, workers=2)


def test_several_workers_are_fine_on_redis():
    assert Settings(_env_file=None, redis_url="redis://127.0.0.1:6379/0", workers=4).workers == 4


def test_embedded_mode_runs_one_worker():
    assert Settings(_env_file=None, redis_url=None, workers=1).embedded


def test_workers_are_at_least_one():
    with pytest.raises(ValidationError, match="workers"):
        Settings(_env_file=None, redis_url="redis://127.0.0.1:6379/0", workers=0)


REDIS = "redis://127.0.0.1:6379/0"
PG = "postgresql+asyncpg://nbo@db/nbo"


def test_production_refuses_to_run_without_api_keys():
    with pytest.raises(ValidationError, match="production refuses NBO_AUTH=none"):
        Settings(_env_file=None, environment="production", redis_url=REDIS, database_url=PG, auth="none")


@pytest.mark.parametrize(
    ("changes", "mode"),
    [
        ({}, "none"),  # the embedded development mode on a laptop
        ({"environment": "test"}, "none"),
        ({"redis_url": REDIS}, "keys"),  # shared stores: a deployment, keys unless said otherwise
        ({"environment": "production", "redis_url": REDIS, "database_url": PG}, "keys"),
        ({"auth": "keys"}, "keys"),
        ({"redis_url": REDIS, "auth": "none"}, "none"),
    ],
)
def test_api_keys_are_off_by_default_only_in_the_embedded_development_mode(changes: dict, mode: str):
    assert Settings(_env_file=None, **changes).auth_mode == mode
