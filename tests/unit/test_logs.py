"""Structured logs: JSON lines, extras kept, personal data and secrets dropped even when passed."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from app.logs import JsonFormatter, configure_logging
from history.migrate import upgrade


def test_json_log_line_keeps_extras_and_drops_private_fields():
    record = logging.LogRecord("nbo.service", logging.WARNING, __file__, 1, "summary not updated", (), None)
    record.decision_id = "d-1"
    record.customer_id = "c-000042"
    record.api_key = "s3cret"
    line = orjson.loads(JsonFormatter().format(record))
    assert line["msg"] == "summary not updated" and line["level"] == "warning" and line["decision_id"] == "d-1"
    assert "customer_id" not in line and "api_key" not in line


def test_access_log_is_off_unless_asked():
    root, access = logging.getLogger(), logging.getLogger("uvicorn.access")
    saved = (root.handlers[:], root.level, access.disabled)
    try:
        configure_logging("INFO", access_log=False)
        assert access.disabled
        configure_logging("INFO", access_log=True)
        assert not access.disabled
    finally:
        root.handlers[:], access.disabled = saved[0], saved[2]
        root.setLevel(saved[1])


@pytest.mark.parametrize(("level", "chatty"), [("INFO", False), ("WARNING", False), ("DEBUG", True)])
def test_alembic_start_up_chatter_is_shown_only_at_debug(
    level: str, chatty: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    root, alembic = logging.getLogger(), logging.getLogger("alembic")
    saved = (root.handlers[:], root.level, alembic.level)
    try:
        configure_logging(level)  # its handler writes to the sys.stdout that capsys captures
        upgrade(f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        alembic.setLevel(saved[2])
    out = capsys.readouterr().out
    assert ("Context impl SQLiteImpl" in out) is chatty, out
    if not chatty:  # plugins are set up once per process: only the first upgrade can log them
        assert "Will assume non-transactional DDL" not in out and "setup plugin" not in out, out
