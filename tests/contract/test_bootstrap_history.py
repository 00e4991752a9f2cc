"""The settings reach the history the service opens (bootstrap), observed on the real SQLite writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.bootstrap import open_history
from app.settings import Settings


@pytest.mark.parametrize("level", ["full", "normal"])
async def test_nbo_sqlite_synchronous_reaches_the_writer_connection(tmp_path: Path, level: str):
    settings = Settings(environment="test", database_url=f"sqlite+aiosqlite:///{tmp_path / 'h.db'}",
                        sqlite_synchronous=level)  # fmt: skip
    history = await open_history(settings)
    try:
        assert await history.durability() == level
    finally:
        await history.close()
