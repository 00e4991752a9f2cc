"""The FastAPI application: `create_app()` wires the service in the lifespan; routes stay thin."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.admin import admin_router
from app.auth import install_auth_handlers, open_auth
from app.console import mount_console
from app.decision_endpoint import DecisionEndpoint
from app.errors import error_kind, error_response
from app.metrics import MetricsMiddleware
from app.reloading import Reloader, watching
from app.routes import router
from app.settings import Settings
from app.trigger_routes import trigger_router
from decisioning.ports import StoreUnavailable
from history.writer import HistoryWriteError
from service.errors import ServiceError
from service.metrics import Metrics
from service.service import DecisionService

log = logging.getLogger("nbo.app")
STORE_FAILURES: tuple[type[Exception], ...] = (HistoryWriteError, DBAPIError, RedisError, OSError, StoreUnavailable)

HTTP_KINDS = {404: "not_found", 405: "method_not_allowed"}

ServiceFactory = Callable[[Settings, Metrics], Awaitable[DecisionService]]


def create_app(settings: Settings | None = None, service_factory: ServiceFactory | None = None) -> FastAPI:
    """Build the app. The service (stores, catalogue, model) is created in the lifespan, never at import.

    >>> app = create_app(Settings(environment="test"))  # doctest: +SKIP
    """
    settings = settings or Settings()
    metrics = Metrics(stage_cpu=settings.stage_cpu_timers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        factory = service_factory or _default_factory
        pointer = await _model_pointer(settings)  # read before the model loads: see Reloader
        service = await factory(settings, metrics)
        app.state.service = service
        app.state.reloader = reloader = Reloader(service, settings, metrics, pointer)
        try:
            # After the service: its start migrates the embedded database, where the keys live too.
            app.state.auth, close_auth = await open_auth(settings)
        except BaseException:
            await service.close()
            raise
        try:
            await _learn_at_start(reloader)
            if settings.environment != "test":  # a test process starts many apps: nothing would be collected
                _freeze_startup_objects()
            async with watching(reloader):
                yield
        finally:
            await close_auth()
            await service.close()

    app = FastAPI(
        title="NBO decision service",
        version="0.1.0",
        description=(
            "Real-time next-best-offer decisions with contact policies and a unified contact history. "
            "/v1 needs `Authorization: Bearer KEY` (keys from `nbo keys create`, with scopes and channels) "
            "unless the service runs with NBO_AUTH=none; /healthz, /readyz and /metrics are open."
        ),
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry looks for configured providers on every request (~10 µs: three
        # environment reads); the service exports Prometheus metrics, so it is on only when asked for.
        telemetry=None if settings.opentelemetry else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.include_router(router)
    app.include_router(admin_router)
    mount_console(app)  # the operator console under /console (app/console)
    app.include_router(trigger_router)
    _install_error_handlers(app)
    install_auth_handlers(app, _count)
    if settings.fast_decisions:
        app.add_middleware(DecisionEndpoint)  # innermost: inside the body limit and the metrics
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _default_factory(settings: Settings, metrics: Metrics) -> DecisionService:
    from app.bootstrap import build_service  # heavy imports (LightGBM) only when the app starts

    return await build_service(settings, metrics)


async def _model_pointer(settings: Settings) -> bytes | None:
    from app.bootstrap import model_pointer

    try:
        return await asyncio.to_thread(model_pointer, settings)
    except OSError:
        return None  # unreadable now: the first poll tries again


def _freeze_startup_objects() -> None:
    """Keep what the start built (catalogue, model, in-process features, imported modules) out of the cyclic
    garbage collector's scans: a full collection otherwise walks every one of those objects, a pause of
    tens of ms with an embedded store of 100k customers, charged to whichever requests are in flight.
    Objects made later (a reload's catalogue or model) are collected as usual; of the frozen ones, what a
    reload replaces stays in memory if it is held in a reference cycle: one generation at most."""
    gc.collect()
    gc.freeze()


async def _learn_at_start(reloader: Reloader) -> None:
    """Start with the posteriors the history already supports (a restart must not forget what was learnt)."""
    try:
        await reloader.refresh_posteriors()
    except Exception as error:  # the periodic refresh will try again; serving starts on the priors
        log.warning("posterior refresh at start failed", extra={"error": type(error).__name__})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # The field and the reason; not the submitted value, which may be personal data.
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        _count(request, "validation")
        return JSONResponse({"error": "validation", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body that is not even text, an unknown path or method) in our one shape.
        if exc.status_code == 400:
            # A body FastAPI could not parse (e.g. bytes that are not UTF-8): invalid input, as bad JSON is.
            _count(request, "validation")
            detail = [{"loc": ["body"], "msg": "the body could not be parsed as JSON", "type": "json_invalid"}]
            return JSONResponse({"error": "validation", "detail": detail}, status_code=422)
        kind = HTTP_KINDS.get(exc.status_code, "http_error")
        return JSONResponse({"error": kind, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

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


# An oversized body is read and thrown away up to these bounds before the 413 goes out: a server that answers
# and closes while the client is still sending makes the client's kernel see a reset, and the client never
# reads the answer. Past them (a client that keeps sending) the 413 is sent with `Connection: close`.
DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_MAX_SECONDS = 10.0


class BodyLimitMiddleware:
    """Refuse bodies over `limit` bytes with a 413 that names the body, never holding more than `limit` of it.

    A declared Content-Length over the limit is refused before the app sees the request; a chunked body when
    its running total passes the limit. Either way the rest of the body is drained (see DRAIN_MAX_BYTES).
    """

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse_declared(headers, receive, send, int(declared))
            return
        guard = _StreamGuard(receive, send, self.limit)
        try:
            await self.app(scope, guard.receive, guard.send)
        except Exception:
            # Cut off mid-body, the app may fail in its own way; the client gets the 413 below instead.
            if guard.refused is None:
                raise
        if guard.refused is not None:
            size, drained = guard.refused
            await self._refuse(send, f"body of {'' if drained else 'more than '}{size} bytes", drained)

    async def _refuse_declared(self, headers: dict[bytes, bytes], receive: Any, send: Any, size: int) -> None:
        # A client that asked `Expect: 100-continue` has not sent the body and will not: nothing to drain.
        waiting = headers.get(b"expect", b"").lower() == b"100-continue"
        drained = not waiting and size <= DRAIN_MAX_BYTES and await _drain(receive, DRAIN_MAX_BYTES)
        await self._refuse(send, f"body of {size} bytes", drained)

    async def _refuse(self, send: Any, what: str, drained: bool) -> None:
        detail = {"loc": ["body"], "type": "too_large", "msg": f"{what} exceeds the limit of {self.limit}"}
        body = JSONResponse({"error": "too_large", "detail": [detail]}, status_code=413)
        # Undrained bytes would be read as the next request: the connection cannot be reused.
        headers = body.raw_headers + ([] if drained else [(b"connection", b"close")])
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body.body})


class _StreamGuard:
    """Counts a body of unknown length as the app reads it. Past the limit it drains the rest and tells the
    app the client went away (FastAPI would turn an exception raised here into its own 400); whatever the
    app answers then is dropped, so that the middleware's 413 is the only answer."""

    def __init__(self, receive: Any, send: Any, limit: int) -> None:
        self._receive, self._send, self._limit = receive, send, limit
        self.seen = 0
        self.refused: tuple[int, bool] | None = None  # (bytes seen, whether the body was drained to its end)

    async def receive(self) -> dict[str, Any]:
        if self.refused is not None:
            return {"type": "http.disconnect"}
        message = await self._receive()
        self.seen += len(message.get("body", b""))
        if self.seen <= self._limit:
            return message
        more = message.get("more_body", False)
        self.refused = (self.seen, not more or await _drain(self._receive, DRAIN_MAX_BYTES - self.seen))
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.refused is None:
            await self._send(message)


async def _drain(receive: Any, budget: int) -> bool:
    """Read and discard the rest of a request body; whether it ended within `budget` bytes and
    DRAIN_MAX_SECONDS (False also when the client went away)."""
    try:
        async with asyncio.timeout(DRAIN_MAX_SECONDS):
            while budget >= 0:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return budget >= 0
    except TimeoutError:
        return False
    return False
