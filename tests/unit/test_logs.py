"""Structured logs: JSON lines, extras kept, personal data and secrets dropped even when passed."""

from __future__ import annotations

import logging

import orjson

from app.logs import JsonFormatter, configure_logging


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
