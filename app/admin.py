"""Operator endpoints under /v1/admin: `POST /v1/admin/reload`.

Access: `require_admin` is the hook for the API keys' `admin` scope. It lets every caller through today;
the API-keys work replaces its body (or the `AdminOnly` alias) with the scope check, and every admin
route already depends on it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.reloading import ReloadRefused


def require_admin() -> None:
    """Placeholder for the `admin` scope check (API keys): admits every caller until it is replaced."""


AdminOnly = Annotated[None, Depends(require_admin)]

admin_router = APIRouter()


class ReloadOut(BaseModel):
    reloaded: bool
    catalogue_version: str
    model_version: str


@admin_router.post(
    "/v1/admin/reload",
    response_model=ReloadOut,
    responses={422: {"description": "refused: every problem of the catalogue or the model"}},
    tags=["operations"],
)
async def post_reload(request: Request, _: AdminOnly) -> ReloadOut | JSONResponse:
    """Reload the catalogue directory (with events.yaml) and the model pointer, as one swap.

    An invalid catalogue or a model that does not load is refused with its problems, listed as
    `nbo catalogue validate` prints them; the service keeps serving what it served."""
    try:
        done = await request.app.state.reloader.reload()
    except ReloadRefused as refused:
        request.app.state.metrics.errors.labels("reload_refused").inc()
        detail = [
            {"file": p.file, "location": p.location, "msg": p.message, "problem": str(p)} for p in refused.problems
        ]
        return JSONResponse({"error": "reload_refused", "detail": detail}, status_code=422)
    return ReloadOut(reloaded=True, catalogue_version=done.catalogue_version, model_version=done.model_version)
