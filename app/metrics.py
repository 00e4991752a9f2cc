"""The HTTP side of the metrics: a plain ASGI middleware timing every request by its route template.

The service's own metrics (decisions, stages, suppressions...) are `service.metrics.Metrics`. For
POST /v1/decisions the middleware also runs the request's stage clock (`service.metrics.lap`): the
stages before the handler (`http`: body, JSON, validation, auth), after it (`serialisation`: the
response model to JSON bytes, up to the response start; `send`), and its own (`metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from service.metrics import Metrics, StageClock, current_clock

DECISIONS = "/v1/decisions"


class MetricsMiddleware:
    """Time every request, labelled by its route template (bounded), method and status."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        clock = StageClock(self.metrics.stage_times) if scope["path"] == DECISIONS else None
        token = current_clock.set(clock)

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if clock is not None:
                    clock.lap("serialisation")
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if clock is not None:
                clock.lap("send")
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.hot.requests(template, scope.get("method", ""), str(status["code"])).observe(
                time.perf_counter() - start
            )
            if clock is not None:
                clock.lap("metrics")
                self.metrics.stage_times.wall["total"] += time.perf_counter() - start
                self.metrics.stage_times.count["total"] += 1
            current_clock.reset(token)
