"""`nbo history partitions` and `nbo history retain` as an operator runs them, on the embedded SQLite."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from decisioning.types import DAY
from history import SqlHistory
from history.tables import contacts

from .test_history_contract import count, decision

CATALOGUE = Path(__file__).parents[1] / "fixtures" / "stack_catalogue"  # reads 67 days of history


@pytest.fixture
def environment(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("NBO_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("NBO_CATALOGUE_DIR", str(CATALOGUE))
    return sqlite_url


async def record(url: str, ages_in_days: list[float]) -> None:
    history = SqlHistory(url)
    await history.start()
    now = time.time()
    for i, age in enumerate(ages_in_days):
        await history.record_decision(decision(f"d-{i}", at=now - age * DAY))
    await history.close()


async def contacts_left(url: str) -> int:
    history = SqlHistory(url)
    await history.start()
    try:
        return await count(history, contacts)
    finally:
        await history.close()


def test_retain_refuses_too_short_a_history_and_names_the_policy(environment: str):
    asyncio.run(record(environment, [1, 500]))
    result = CliRunner().invoke(cli, ["history", "retain", "--months", "1"])
    assert result.exit_code == 1
    assert "refused" in result.output and "decline_cool_off" in result.output and "--months" in result.output
    assert asyncio.run(contacts_left(environment)) == 2  # nothing removed


def test_retain_deletes_what_is_older_and_archives_it(environment: str, tmp_path: Path):
    asyncio.run(record(environment, [1, 20, 500, 600]))
    result = CliRunner().invoke(cli, ["history", "retain", "--months", "6", "--archive", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "deleted 2 rows from contacts" in result.output
    assert asyncio.run(contacts_left(environment)) == 2
    assert sorted(p.name.split("_")[0] for p in (tmp_path / "a").iterdir()) == ["contacts", "contacts"]


def test_partitions_on_sqlite_has_nothing_to_do(environment: str):
    result = CliRunner().invoke(cli, ["history", "partitions", "--ahead", "2"])
    assert result.exit_code == 0 and "nothing to partition" in result.output
