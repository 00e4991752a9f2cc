"""Per-customer locks: one customer's decisions are made one at a time, so that two concurrent requests
cannot both slip under a contact-policy cap (DESIGN.md: a presentation counts from the moment the decision
is made). The lock covers load -> decide -> record -> summary update.

`LocalCustomerLock` serialises within one process (the embedded mode has one). `RedisCustomerLock` also
serialises across replicas: a `SET NX PX` key per customer, released only by its holder (compare and
delete); it expires by itself if a replica dies holding it. While held, its lease is renewed every third of
its ttl, so that a slow commit keeps the lock however long it takes. A process first takes its local lock,
so that its own concurrent requests queue in memory instead of polling Redis.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from weakref import WeakValueDictionary

from redis.exceptions import RedisError

from decisioning.ports import LockTimeout
from features.redis_client import RedisClient

log = logging.getLogger("nbo.locks")
RENEWAL_TASK = "nbo-lock-renewal"

# KEYS[1] lock key; ARGV[1] the holder's token. Deletes the key only if this holder still has it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] lock key; ARGV[1] the holder's token; ARGV[2] the lease in ms. Extends the lease only if this
# holder still has the lock: a lease that already expired (and maybe went to another holder) stays lost.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class LocalCustomerLock:
    """One asyncio.Lock per customer, forgotten when nobody holds or waits for it.

    >>> async with LocalCustomerLock().hold("c-000042"):  # doctest: +SKIP
    ...     ...
    """

    def __init__(self) -> None:
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[None]:
        lock = self._locks.get(customer_id)
        if lock is None:
            lock = self._locks[customer_id] = asyncio.Lock()
        async with lock:
            yield


class RedisCustomerLock:
    """A per-customer lock shared by every replica through Redis.

    `ttl_ms` bounds how long a crashed holder blocks the customer; `wait_ms` how long a request waits.

    >>> locks = RedisCustomerLock(redis_client(url), prefix="nbo")  # doctest: +SKIP
    >>> async with locks.hold("c-000042"):                # doctest: +SKIP
    ...     ...
    """

    def __init__(self, client: RedisClient, *, prefix: str = "nbo", ttl_ms: int = 2_000, wait_ms: int = 1_000) -> None:
        self.client = client
        self.prefix = f"{prefix}:lock:"
        self.ttl_ms = ttl_ms
        self.wait_ms = wait_ms
        self._local = LocalCustomerLock()
        self._release = client.register_script(RELEASE)
        self._renew = client.register_script(RENEW)

    def key(self, customer_id: str) -> str:
        return f"{self.prefix}{{{customer_id}}}"

    @asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[None]:
        async with self._local.hold(customer_id):
            key, token = self.key(customer_id), secrets.token_hex(8)
            await self._acquire(key, token)
            released = asyncio.Event()
            renewal = asyncio.create_task(self._keep(key, token, released), name=RENEWAL_TASK)
            try:
                yield
            finally:
                # Not awaited: a renewal still in flight after the release is a no-op (compare and expire),
                # and waiting for it could take as long as the client's pool timeout.
                released.set()
                renewal.cancel()
                await self._release(keys=[key], args=[token])

    async def _acquire(self, key: str, token: str) -> None:
        delay, waited = 0.0005, 0.0
        while not await self.client.set(key, token, nx=True, px=self.ttl_ms):
            if waited * 1000 >= self.wait_ms:
                raise LockTimeout(f"customer lock {key} held for more than {self.wait_ms} ms")
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 0.02)

    async def _keep(self, key: str, token: str, released: asyncio.Event) -> None:
        """Renew the lease every ttl/3 until released, or until the lock is found lost."""
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            # The release also cancels this task, but a cancellation that lands inside a Redis call can come
            # back as a connection error (caught below): the flag is what reliably ends the loop.
            if released.is_set():
                return
            try:
                renewed = await self._renew(keys=[key], args=[token, self.ttl_ms])
            except (RedisError, OSError) as error:
                # The lease may still hold: try again at the next tick, while it has a chance to.
                log.warning("customer lock renewal failed; retrying", extra={"error": type(error).__name__})
                continue
            if not renewed:
                # Not the customer id (logs carry none): the holder goes on, no longer excluding others.
                log.warning("customer lock lost while held: its lease expired before it was renewed")
                return
