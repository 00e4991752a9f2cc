"""Domain errors to HTTP: each `service.errors` class has one status and one JSON shape, in one place.

- `InvalidInput` -> 422 `{"error": "validation", "detail": [{"loc": ["body", ...], "msg", "type"}]}`, the
  same shape as a schema error, so callers handle both alike;
- `NotFound` -> 404; `Unavailable` (and `Overloaded`) -> 503 with `Retry-After`.
The submitted value is never echoed back: it may be personal data.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

from service.errors import InvalidInput, NotFound, ServiceError, Unavailable


def error_kind(error: ServiceError) -> str:
    """The short, bounded kind of an error, for the body and the metrics."""
    if isinstance(error, InvalidInput):
        return "validation"
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, Unavailable):
        return "unavailable"
    return "internal"


def error_response(error: ServiceError) -> JSONResponse:
    """The HTTP answer to a domain error."""
    kind = error_kind(error)
    if isinstance(error, InvalidInput):
        detail: Any = [{"loc": ["body", *error.field.split(".")], "msg": error.message, "type": "value_error"}]
        return JSONResponse({"error": kind, "detail": detail}, status_code=422)
    if isinstance(error, NotFound):
        return JSONResponse({"error": kind, "detail": str(error)}, status_code=404)
    if isinstance(error, Unavailable):
        headers = {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
        return JSONResponse({"error": kind, "detail": str(error)}, status_code=503, headers=headers)
    return JSONResponse({"error": kind, "detail": "unexpected error; it was logged"}, status_code=500)
