"""NBO_DATABASE_READ_URL: the reads that may lag go to the replica, the ones that feed contact policies stay
on the primary. The "replica" here is a second migrated PostgreSQL database holding different rows, so each
read shows which database answered it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.bootstrap import open_adapters, service_from
from app.cli import cli
from app.settings import Settings
from decisioning.types import DAY, Outcome
from history import SqlHistory
from history.migrate import upgrade
from service.metrics import Metrics

from .conftest import pg_admin, pg_async_url, pg_run
from .test_history_contract import decision, response

pytestmark = pytest.mark.services
CATALOGUE = Path(__file__).parents[1] / "fixtures" / "stack_catalogue"
T0 = 1_790_000_000.0


@pytest.fixture
def replica() -> Iterator[str]:
    name = f"nbo_replica_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_run(pg_admin(f"CREATE DATABASE {name}"))
    try:
        url = pg_async_url(name)
        upgrade(url)
        yield url
    finally:
        pg_run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def record(url: str, decision_id: str, *, answered: bool = False) -> None:
    history = SqlHistory(url)
    await history.start()
    try:
        made = decision(decision_id, ("card_cashback",), at=T0)
        assert await history.record_decision(made)
        if answered:
            answer = response(f"r-{decision_id}", "card_cashback", decision_id, T0 + 60, outcome=Outcome.DECLINED)
            assert await history.record_response(answer)
    finally:
        await history.close()


def settings_for(primary: str, replica: str | None, tmp_path: Path) -> Settings:
    return Settings(environment="test", database_url=primary, database_read_url=replica, catalogue_dir=CATALOGUE,
                    features_file=None, model_dir=tmp_path / "models", spool_dir=None)  # fmt: skip


async def test_the_listing_reads_the_replica_and_the_policies_read_the_primary(pg_url: str, replica: str, tmp_path):
    await record(pg_url, "d-primary", answered=True)
    await record(replica, "d-replica")
    settings = settings_for(pg_url, replica, tmp_path)
    service = service_from(await open_adapters(settings), settings, Metrics())
    try:
        listed = await service.customer_history("c-1", 10)
        summary = await service.summaries.rebuild("c-1", now=T0 + DAY)
    finally:
        await service.close()
    assert {e.decision_id for e in listed} == {"d-replica"}
    assert any(e.outcome is Outcome.DECLINED for e in summary.events)  # the primary's answered decision


async def test_without_a_replica_the_listing_reads_the_primary(pg_url: str, tmp_path: Path):
    await record(pg_url, "d-primary")
    settings = settings_for(pg_url, None, tmp_path)
    service = service_from(await open_adapters(settings), settings, Metrics())
    try:
        assert {e.decision_id for e in await service.customer_history("c-1", 10)} == {"d-primary"}
    finally:
        await service.close()


def test_nbo_train_reads_the_replica(pg_url: str, replica: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The primary holds an answered contact, the replica none: training on the replica finds nothing."""
    pg_run(record(pg_url, "d-primary", answered=True))
    for name, value in {"NBO_DATABASE_URL": pg_url, "NBO_DATABASE_READ_URL": replica,
                        "NBO_CATALOGUE_DIR": str(CATALOGUE), "NBO_MODEL_DIR": str(tmp_path)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    on_replica = CliRunner().invoke(cli, ["train", "--until", "2026-12-01"])
    monkeypatch.delenv("NBO_DATABASE_READ_URL")
    on_primary = CliRunner().invoke(cli, ["train", "--until", "2026-12-01"])
    # One contact is too few to train on either way; what each read is in the refusal.
    assert on_replica.exit_code == on_primary.exit_code == 1
    assert "'read': 0" in on_replica.output and "'read': 1" in on_primary.output
