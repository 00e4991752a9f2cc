"""Per-customer locks: holders never overlap, within a process and across replicas (real Redis)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from coordination.locks import RENEWAL_TASK, LocalCustomerLock, RedisCustomerLock
from decisioning.ports import LockTimeout


async def overlaps(holders: list, customer_id: str, rounds: int = 50) -> int:
    """Run `rounds` critical sections per holder at once; count how often two were inside together."""
    inside, worst = 0, 0

    async def work(holder) -> None:
        nonlocal inside, worst
        for _ in range(rounds):
            async with holder.hold(customer_id):
                inside += 1
                worst = max(worst, inside)
                await asyncio.sleep(0)
                inside -= 1

    await asyncio.gather(*(work(h) for h in holders for _ in range(4)))
    return worst


def renewals() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name() == RENEWAL_TASK and not t.done()]


async def test_local_lock_serialises_one_customer():
    assert await overlaps([LocalCustomerLock()], "c-1") == 1


@pytest.mark.services
async def test_redis_lock_serialises_one_customer_across_replicas(redis_client: Redis, redis_prefix: str):
    replicas = [RedisCustomerLock(redis_client, prefix=redis_prefix) for _ in range(2)]  # two "processes"
    assert await overlaps(replicas, "c-1", rounds=20) == 1
    assert await redis_client.exists(replicas[0].key("c-1")) == 0  # released after use


@pytest.mark.services
async def test_redis_lock_of_a_dead_holder_expires(redis_client: Redis, redis_prefix: str):
    dead = RedisCustomerLock(redis_client, prefix=redis_prefix)
    await redis_client.set(dead.key("c-1"), "someone-else", px=150)
    waiting = RedisCustomerLock(redis_client, prefix=redis_prefix, wait_ms=2_000)
    async with waiting.hold("c-1"):
        assert await redis_client.get(waiting.key("c-1")) != b"someone-else"


@pytest.mark.services
async def test_redis_lock_gives_up_after_its_wait_and_never_frees_another_holders_lock(
    redis_client: Redis, redis_prefix: str
):
    impatient = RedisCustomerLock(redis_client, prefix=redis_prefix, wait_ms=30)
    await redis_client.set(impatient.key("c-1"), "holder", px=5_000)
    with pytest.raises(LockTimeout):
        async with impatient.hold("c-1"):
            pass
    assert await redis_client.get(impatient.key("c-1")) == b"holder"


@pytest.mark.services
async def test_a_holder_slower_than_the_lease_keeps_excluding_others(redis_client: Redis, redis_prefix: str):
    ttl_ms = 300
    slow = RedisCustomerLock(redis_client, prefix=redis_prefix, ttl_ms=ttl_ms)
    other = RedisCustomerLock(redis_client, prefix=redis_prefix, ttl_ms=ttl_ms, wait_ms=20)  # another replica
    attempts, got_in = 0, 0
    async with slow.hold("c-1"):
        renewing = len(renewals())
        deadline = asyncio.get_running_loop().time() + 3 * ttl_ms / 1000
        while asyncio.get_running_loop().time() < deadline:
            attempts += 1
            try:
                async with other.hold("c-1"):
                    got_in += 1
            except LockTimeout:
                pass
    assert attempts >= 10 and got_in == 0, f"the second holder got in {got_in} times of {attempts}"
    assert renewing == 1 and renewals() == []  # one renewal task while held, none after the release
    async with other.hold("c-1"):  # released: free again
        pass


@pytest.mark.services
async def test_a_lease_lost_while_held_is_logged_and_renewal_stops(
    redis_client: Redis, redis_prefix: str, caplog: pytest.LogCaptureFixture
):
    locks = RedisCustomerLock(redis_client, prefix=redis_prefix, ttl_ms=150)
    with caplog.at_level(logging.WARNING, logger="nbo.locks"):
        async with locks.hold("c-1"):
            await redis_client.set(locks.key("c-1"), "a-newer-holder", px=5_000)  # as if our lease had expired
            await asyncio.sleep(0.2)
            assert renewals() == []  # it gave up: never renews another holder's lease
    assert any("lost" in r.getMessage() for r in caplog.records)
    assert await redis_client.get(locks.key("c-1")) == b"a-newer-holder"  # and the release left it alone


@pytest.mark.services
async def test_a_renewal_whose_cancel_comes_back_as_an_error_still_stops(redis_client: Redis, redis_prefix: str):
    # redis-py may turn a cancellation inside a command into a ConnectionError: the renewal must stop anyway,
    # and the release must not wait for it.
    locks = RedisCustomerLock(redis_client, prefix=redis_prefix, ttl_ms=90)
    in_flight = asyncio.Event()

    async def slow_renew(**_: object) -> int:
        in_flight.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RedisConnectionError("cancelled mid-command") from None
        return 1

    locks._renew = slow_renew
    async with asyncio.timeout(2):
        async with locks.hold("c-1"):
            await in_flight.wait()
    await asyncio.sleep(0.1)  # longer than one renewal interval (ttl/3)
    assert renewals() == []
