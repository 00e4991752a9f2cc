"""The ports of real-time triggers, picked from the settings (docs/triggers.md): with Redis, claims by
`SET NX PX` and deliveries on a Redis Stream; embedded, both in process (the queue is read through
`GET /v1/triggers/deliveries`, e.g. by `nbo triggers read`); the signed webhook when one is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.settings import Settings
from coordination.claims import InMemoryTriggerClaims, RedisTriggerClaims
from decisioning.ports import CustomerCache
from decisioning.triggers import TriggerClaims
from delivery.outlets import FanOut, InProcessDeliveries, PrimaryOutlet, RedisStreamDeliveries, Secondary
from delivery.webhook import WebhookOutlet
from features.redis_cache import RedisCustomerCache
from service.metrics import Metrics
from service.triggers import TriggerOutlets

if TYPE_CHECKING:
    from app.bootstrap import Adapters


def trigger_outlets(settings: Settings, cache: CustomerCache) -> TriggerOutlets:
    """Claims and outlets for the catalogue's triggers: Redis (`SET NX PX`, a Stream) with Redis, else in
    process (a dict, a queue read through GET /v1/triggers/deliveries); plus the webhook when configured."""
    primary: PrimaryOutlet
    client = cache.client if isinstance(cache, RedisCustomerCache) else None
    if client is not None:
        claims: TriggerClaims = RedisTriggerClaims(client, prefix=settings.redis_prefix)
        primary = RedisStreamDeliveries(client, prefix=settings.redis_prefix, maxlen=settings.trigger_stream_maxlen)
    else:
        claims, primary = InMemoryTriggerClaims(), InProcessDeliveries(settings.trigger_stream_maxlen)
    secondaries: list[Secondary] = []
    if settings.trigger_webhook_url and settings.trigger_webhook_secret:
        secret = settings.trigger_webhook_secret.get_secret_value().encode()
        secondaries.append(
            WebhookOutlet(
                settings.trigger_webhook_url, secret, attempts=settings.trigger_webhook_attempts,
                backoff_seconds=settings.trigger_webhook_backoff_seconds,
                timeout_seconds=settings.trigger_webhook_timeout_seconds,
            )
        )  # fmt: skip
    return TriggerOutlets(claims, FanOut(primary, secondaries))


def observe_webhook(adapters: Adapters, metrics: Metrics) -> None:
    """Webhook attempts counted by outcome (`nbo_trigger_webhook_total`)."""
    outlet = adapters.triggers.outlet if adapters.triggers is not None else None
    for secondary in outlet.secondaries if isinstance(outlet, FanOut) else ():
        if isinstance(secondary, WebhookOutlet):
            secondary.observe = lambda outcome: metrics.webhook_deliveries.labels(outcome).inc()
