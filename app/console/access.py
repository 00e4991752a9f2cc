"""Logging in and out of the console (see app/console/session.py for the cookie and the CSRF token)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.auth import KeyVerifier
from app.console.session import Who, fresh_session, read_session, require_csrf
from app.console.web import page, with_session

router = APIRouter()
log = logging.getLogger("nbo.console")


def _next(target: str) -> str:
    # Only a console path: a login form must not become a redirect to another site.
    return target if target.startswith("/console") and "//" not in target and "\\" not in target else "/console"


@router.get("/console", include_in_schema=False)
async def index(who: Who) -> RedirectResponse:
    return RedirectResponse("/console/customer" if who.can("history:read") else "/console/catalogue", 303)


@router.get("/console/login", response_class=HTMLResponse, include_in_schema=False)
async def login_page(request: Request, next: str = "/console", expired: int = 0) -> Response:
    """The key form; without keys (NBO_AUTH=none) there is nothing to log in to."""
    if request.app.state.auth is None:
        return RedirectResponse(_next(next), 303)
    message = "Your session's key is no longer valid: log in again." if expired else ""
    return page(request, "login.html", None, next=_next(next), message=message)


@router.post("/console/login", include_in_schema=False)
async def login(
    request: Request, key: Annotated[str, Form(max_length=200)], next: Annotated[str, Form()] = "/console"
) -> Response:
    """Check the key, then keep it in a fresh session (new nonce: no session fixation)."""
    await require_csrf(request, read_session(request))
    verifier: KeyVerifier | None = request.app.state.auth
    if verifier is None:
        return RedirectResponse(_next(next), 303)
    found = await verifier.verify(key.strip())
    if found is None:
        log.info("console login refused")  # never the key itself
        return page(request, "login.html", None, status=401, next=_next(next), message="That key is not valid.")
    log.info("console login", extra={"key_name": found.name})
    return with_session(request, RedirectResponse(_next(next), 303), fresh_session(key.strip()))


@router.post("/console/logout", include_in_schema=False)
async def logout(request: Request, who: Who) -> Response:
    await require_csrf(request, who.session)
    return with_session(request, RedirectResponse("/console/login", 303), fresh_session())
