"""Structured JSON logs. Only what an operator needs: no customer ids, features or secrets."""

from __future__ import annotations

import logging
import sys
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed with `extra=` and goes into the JSON.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# Never logged, even when a caller passes them by mistake.
_PRIVATE = {"customer_id", "features", "password", "secret", "api_key", "authorization"}


QUIET_AT_DEBUG = ("aiosqlite", "sqlalchemy", "asyncpg")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _PRIVATE:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", access_log: bool = False) -> None:
    """JSON lines on stdout for the service and uvicorn; the access log only when asked (it costs CPU on
    every request)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = not access_log
    # Alembic narrates every start at INFO (plugin set-up, "Context impl SQLiteImpl", ...): noise for an
    # operator, useful only when debugging a migration.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
    # The database drivers log every statement with its parameters at INFO/DEBUG: customer ids, features,
    # API key hashes. Never below WARNING, whatever NBO_LOG_LEVEL says.
    for name in QUIET_AT_DEBUG:
        logging.getLogger(name).setLevel(logging.WARNING)
