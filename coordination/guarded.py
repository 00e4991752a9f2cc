"""The Redis-backed ports behind one shared circuit breaker (`coordination.breaker`).

Each wrapper calls its adapter through the breaker, so that a Redis that is down or slow turns into
`StoreUnavailable` (a port error the service understands) at once, and after `failure_threshold`
failures into no call at all until the cool-down is over. Cleanups never fail their caller: a budget
unit that cannot be given back, or a customer lock that cannot be released, is logged (the lock expires
by itself; a unit not given back errs towards fewer presentations).

>>> breaker = redis_breaker(failure_threshold=3, cooldown_seconds=2.0)           # doctest: +SKIP
>>> cache = GuardedCache(RedisCustomerCache(client, feature_names=names), breaker)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import RedisError, ResponseError

from coordination.breaker import CircuitBreaker
from decisioning.ports import (
    BudgetCounter,
    CustomerCache,
    CustomerLock,
    CustomerSnapshot,
    FeatureUpdate,
    PrescoredFallback,
    PrescoredOffer,
    StoreUnavailable,
)
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, FeatureValue

log = logging.getLogger("nbo.redis")


# A script error (ResponseError) is a bug or bad data, not an outage: it does not trip the breaker.
REDIS_FAILURES: tuple[type[BaseException], ...] = (OSError, TimeoutError, RedisError)


def redis_breaker(*, failure_threshold: int, cooldown_seconds: float) -> CircuitBreaker:
    """The breaker every Redis port of one process shares (one Redis: one state)."""
    return CircuitBreaker(
        "redis",
        failures=REDIS_FAILURES,
        ignored=(ResponseError,),
        failure_threshold=failure_threshold,
        cooldown_seconds=cooldown_seconds,
    )


class GuardedCache:
    """`CustomerCache` through the breaker."""

    def __init__(self, inner: CustomerCache, breaker: CircuitBreaker) -> None:
        self.inner, self.breaker = inner, breaker

    async def load(self, customer_id: str) -> CustomerSnapshot:
        return await self.breaker.call(lambda: self.inner.load(customer_id))

    async def put_features(self, rows: Sequence[tuple[str, Mapping[str, FeatureValue]]], at: float) -> int:
        return await self.breaker.call(lambda: self.inner.put_features(rows, at))

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None:
        await self.breaker.call(lambda: self.inner.apply_updates(customer_id, updates, at))

    async def append_events(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        await self.breaker.call(lambda: self.inner.append_events(customer_id, events, now))

    async def remove_events(self, customer_id: str, events: Sequence[ContactEvent]) -> None:
        await self.breaker.call(lambda: self.inner.remove_events(customer_id, events))

    async def store_summary(self, customer_id: str, summary: HistorySummary) -> None:
        await self.breaker.call(lambda: self.inner.store_summary(customer_id, summary))

    async def count(self) -> int:
        return await self.breaker.call(self.inner.count)

    async def ping(self) -> bool:
        try:
            return bool(await self.breaker.call(self.inner.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # adapter extras (client, keys) for tools and tests
        return getattr(self.inner, name)


class GuardedBudgets:
    """`BudgetCounter` through the breaker; a release that fails is logged, never raised."""

    def __init__(self, inner: BudgetCounter, breaker: CircuitBreaker) -> None:
        self.inner, self.breaker = inner, breaker

    async def reserve(self, key: str, limit: int, ttl_seconds: float | None) -> bool:
        return await self.breaker.call(lambda: self.inner.reserve(key, limit, ttl_seconds))

    async def release(self, key: str) -> None:
        try:
            await self.breaker.call(lambda: self.inner.release(key))
        except StoreUnavailable:
            log.warning("budget unit not given back: redis unavailable")

    async def used(self, key: str) -> int:
        return await self.breaker.call(lambda: self.inner.used(key))


class GuardedLocks:
    """`CustomerLock` through the breaker: taking the lock may raise `StoreUnavailable` (the caller then
    decides degraded, without it); releasing never raises a store error (the lease expires by itself)."""

    def __init__(self, inner: CustomerLock, breaker: CircuitBreaker) -> None:
        self.inner, self.breaker = inner, breaker

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[None]:
        held = self.inner.hold(customer_id)
        await self.breaker.call(held.__aenter__)
        try:
            yield
        except BaseException as error:
            await self._release(held, error)
            raise
        await self._release(held, None)

    async def _release(self, held: Any, error: BaseException | None) -> None:
        try:
            await held.__aexit__(type(error) if error else None, error, error.__traceback__ if error else None)
        except REDIS_FAILURES as failure:
            if failure is error:
                raise
            log.warning("customer lock not released: it expires by itself", extra={"error": type(failure).__name__})


class GuardedPrescored:
    """`PrescoredFallback` through the breaker."""

    def __init__(self, inner: PrescoredFallback, breaker: CircuitBreaker) -> None:
        self.inner, self.breaker = inner, breaker

    async def top(self, customer_id: str, channel: str, n: int) -> list[PrescoredOffer]:
        return await self.breaker.call(lambda: self.inner.top(customer_id, channel, n))
