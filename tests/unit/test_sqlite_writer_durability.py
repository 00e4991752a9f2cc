"""The embedded history's durability setting reaches the connection that commits."""

from __future__ import annotations

import pytest

from history.sqlite_writer import SqliteWriter


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
async def test_synchronous_setting_is_applied_to_the_writer_connection(tmp_path, setting, pragma):
    writer = SqliteWriter(str(tmp_path / "h.db"), setting)
    try:
        conn = writer._connection()
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == pragma
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        await writer.close()


def test_unknown_synchronous_setting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        SqliteWriter(str(tmp_path / "h.db"), "off")
