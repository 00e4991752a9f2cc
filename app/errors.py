"""Errors that reach HTTP carry their status and go through one handler."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error with its HTTP status, a short machine-readable kind and a detail for humans."""

    status = 500
    kind = "internal"

    def __init__(self, detail: Any) -> None:
        super().__init__(str(detail))
        self.detail = detail


class InvalidField(ApiError):
    """A value that passed the schema but not the catalogue (unknown channel, offer, event type...)."""

    status = 422
    kind = "validation"

    def __init__(self, field: str, message: str, value: Any = None) -> None:
        super().__init__([{"loc": ["body", *field.split(".")], "msg": message, "type": "value_error", "input": value}])


class NotFound(ApiError):
    status = 404
    kind = "not_found"


class Unavailable(ApiError):
    """A store the request needs is down: the caller may retry (nothing was acknowledged)."""

    status = 503
    kind = "unavailable"
