"""The operator console under /console: the call-centre desktop, the catalogue, the live view and what-if.

Server-rendered Jinja2 pages with htmx and Chart.js, both vendored in `static/vendor` (no CDN: the
machines often have no internet). Mounted by `mount_console(app)` in the app factory.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.console import access, catalogue, customer, live, whatif
from app.console.session import ConsoleForbidden, LoginRequired
from app.console.web import HERE, forbidden, login_required


def mount_console(app: FastAPI) -> None:
    """Add the console's routes, its static files and its two HTML error pages (login, 403) to `app`."""
    for module in (access, customer, catalogue, live, whatif):
        app.include_router(module.router, include_in_schema=False)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_exception_handler(LoginRequired, login_required)  # type: ignore[arg-type]
    app.add_exception_handler(ConsoleForbidden, forbidden)  # type: ignore[arg-type]
