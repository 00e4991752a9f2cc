"""The FastAPI application: `create_app()` wires the service in the lifespan; routes stay thin."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from app.errors import error_kind, error_response
from app.metrics import MetricsMiddleware
from app.routes import router
from app.settings import Settings
from history.writer import HistoryWriteError
from service.errors import ServiceError
from service.metrics import Metrics
from service.service import DecisionService

log = logging.getLogger("nbo.app")
STORE_FAILURES: tuple[type[Exception], ...] = (HistoryWriteError, DBAPIError, RedisError, OSError)

ServiceFactory = Callable[[Settings, Metrics], Awaitable[DecisionService]]


def create_app(settings: Settings | None = None, service_factory: ServiceFactory | None = None) -> FastAPI:
    """Build the app. The service (stores, catalogue, model) is created in the lifespan, never at import.

    >>> app = create_app(Settings(environment="test"))  # doctest: +SKIP
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        factory = service_factory or _default_factory
        service = await factory(settings, metrics)
        app.state.service = service
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="NBO decision service",
        version="0.1.0",
        description="Real-time next-best-offer decisions with contact policies and a unified contact history.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.include_router(router)
    _install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _default_factory(settings: Settings, metrics: Metrics) -> DecisionService:
    from app.bootstrap import build_service  # heavy imports (LightGBM) only when the app starts

    return await build_service(settings, metrics)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The field and the reason; not the submitted value, which may be personal data.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        _count(request, "validation")
        return JSONResponse({"error": "validation", "detail": detail}, status_code=422)

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        _count(request, error_kind(exc))
        return error_response(exc)

    for failure in STORE_FAILURES:

        @app.exception_handler(failure)
        async def store_down(request: Request, exc: Exception) -> JSONResponse:
            # A store is down or refused the write: nothing was acknowledged, the caller may retry.
            _count(request, "store_unavailable")
            log.error("store unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
            body = {"error": "unavailable", "detail": "a store is unavailable; retry"}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        _count(request, "internal")
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"error": "internal", "detail": "unexpected error; it was logged"}, status_code=500)


def _count(request: Request, kind: str) -> None:
    request.app.state.metrics.errors.labels(kind).inc()


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes with a 422 that names the body, before reading them whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge(seen)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge as too_large:
            await self._refuse(send, too_large.size)

    async def _refuse(self, send: Any, size: int) -> None:
        body = JSONResponse(
            {
                "error": "validation",
                "detail": [
                    {
                        "loc": ["body"],
                        "type": "too_large",
                        "msg": f"body of {size} bytes exceeds the limit of {self.limit}",
                    }
                ],
            },
            status_code=422,
        )
        await send({"type": "http.response.start", "status": 422, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size
