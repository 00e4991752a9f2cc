"""`GET /v1/triggers/deliveries`: the triggered deliveries, paged oldest first (docs/triggers.md).

In the embedded mode this is how another process (`nbo triggers read`) reads the in-process queue; with
Redis it pages through the Redis Stream (which consumers may also read directly, e.g. with a consumer group).
Scope `admin`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from app.auth import Admin
from app.routes import ERRORS, Service

trigger_router = APIRouter()


class DeliveryOut(BaseModel):
    id: str  # the stream entry id (Redis) or the queue's sequence number (embedded)
    delivery: dict[str, Any]  # delivery_id, trigger, customer_id, channel, decision_id, event_type, at, offers...


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
    last_id: str | None  # pass it as `after` for the next page (None: nothing after `after`)


@trigger_router.get("/v1/triggers/deliveries", response_model=DeliveriesOut, responses=ERRORS, tags=["triggers"])
async def get_deliveries(
    service: Service,
    _: Admin,
    after: Annotated[str | None, Query(max_length=64, pattern=r"^[0-9]+(-[0-9]+)?$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveriesOut:
    """The deliveries published after the id `after` (from the oldest kept without it), oldest first."""
    entries = await service.trigger_deliveries(after, limit)
    page = [DeliveryOut(id=entry_id, delivery=delivery) for entry_id, delivery in entries]
    return DeliveriesOut(deliveries=page, last_id=page[-1].id if page else after)
