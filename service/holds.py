"""The generic customer hold: any `CustomerLock` and `CustomerCache`, one call after the other.

The embedded default and the tests hold customers this way (an in-process lock and cache cost no round
trip); on Redis, coordination/holds.py fuses the same steps into two round trips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from decisioning.ports import CustomerCache, CustomerLock, Held
from decisioning.types import ContactEvent


class LockThenLoad:
    """`CustomerHolds` from a lock and a cache: hold the lock, load, append, release.

    >>> async with LockThenLoad(LocalCustomerLock(), cache).hold("c-1") as held:  # doctest: +SKIP
    ...     held.snapshot
    """

    def __init__(self, locks: CustomerLock, cache: CustomerCache) -> None:
        self.locks, self.cache = locks, cache

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[Held]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(self.locks.hold(customer_id))

            async def append_and_release(events: Sequence[ContactEvent], now: float) -> None:
                try:
                    if events:
                        await self.cache.append_events(customer_id, events, now)
                finally:
                    await stack.aclose()  # the lock's own exit; the outer `async with` then has nothing left

            yield Held(await self.cache.load(customer_id), append_and_release, stack.aclose)
