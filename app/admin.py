"""Operator endpoints under /v1/admin: `POST /v1/admin/reload`.

Access: every admin route needs a key with the `admin` scope (`app.auth.Admin`; no key is needed where
`NBO_AUTH=none`, the embedded development mode).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.auth import Admin
from app.reloading import ReloadRefused
from app.routes import ERRORS
from app.schemas import ErrorOut

admin_router = APIRouter()


class ReloadOut(BaseModel):
    reloaded: bool
    catalogue_version: str
    model_version: str


@admin_router.post(
    "/v1/admin/reload",
    response_model=ReloadOut,
    responses={
        **ERRORS,
        422: {"model": ErrorOut, "description": "refused: every problem of the catalogue or the model"},
    },
    tags=["operations"],
)
async def post_reload(request: Request, _: Admin) -> ReloadOut | JSONResponse:
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
