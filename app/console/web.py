"""Rendering console pages: the Jinja2 environment, the page helper and the HTML error pages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from app.console.session import ConsoleForbidden, LoginRequired, Operator, Session, read_session, set_cookie
from app.console.words import describe_age

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["static"] = lambda name: f"/console/static/{name}"
templates.env.filters["age"] = describe_age
templates.env.filters["when"] = lambda at: datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
# Only this service's own scripts and styles; no framing (the one-click answers must not be clickjacked);
# pages show personal data: never cached on a shared computer.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
templates.env.filters["num"] = lambda x: f"{x:.4g}" if isinstance(x, float) else x


def page(request: Request, name: str, who: Operator | None, status: int = 200, **context: Any) -> HTMLResponse:
    """Render `name` for this operator (or for nobody yet: the login page), setting a new session cookie."""
    session = who.session if who is not None else read_session(request)
    response = templates.TemplateResponse(
        request, name, {"who": who, "csrf": session.csrf, **context}, status_code=status
    )
    if session.new:
        set_cookie(request, response, session)
    response.headers.update(PAGE_HEADERS)
    return response


def with_session(request: Request, response: Response, session: Session) -> Response:
    set_cookie(request, response, session)
    return response


def login_required(request: Request, exc: LoginRequired) -> Response:
    """A page: to the login form (an htmx fragment: tell htmx to load the login page instead)."""
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/console/login"})
    target = request.url.path if request.method == "GET" else "/console"
    query = f"?next={target}" if target.startswith("/console") else ""
    suffix = "&expired=1" if exc.message and query else ""
    return RedirectResponse(f"/console/login{query}{suffix}", status_code=303)


def forbidden(request: Request, exc: ConsoleForbidden) -> HTMLResponse:
    """The 403 page (a fragment for htmx, which swaps it in place of the result)."""
    name = "_forbidden.html" if request.headers.get("hx-request") else "forbidden.html"
    return page(request, name, None, status=403, reason=str(exc))
