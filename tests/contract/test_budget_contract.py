"""One contract for every `BudgetCounter`: in process and on Redis, reservations are exact under load."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from coordination.budgets import InMemoryBudgetCounter, RedisBudgetCounter
from decisioning.ports import BudgetCounter


async def test_concurrent_reservations_never_exceed_the_limit(cache_budgets: BudgetCounter) -> None:
    results = await asyncio.gather(
        *(cache_budgets.reserve("budget:mortgage_call:2026-11-23", 100, 2 * 86_400) for _ in range(2_000))
    )
    assert sum(results) == 100
    assert await cache_budgets.used("budget:mortgage_call:2026-11-23") == 100


async def test_reserve_up_to_the_limit_then_refuse(cache_budgets: BudgetCounter) -> None:
    assert [await cache_budgets.reserve("b", 3, None) for _ in range(4)] == [True, True, True, False]
    assert await cache_budgets.used("b") == 3
    assert await cache_budgets.used("other") == 0


async def test_release_gives_a_unit_back_and_never_goes_below_zero(cache_budgets: BudgetCounter) -> None:
    assert await cache_budgets.reserve("b", 1, None)
    assert not await cache_budgets.reserve("b", 1, None)
    await cache_budgets.release("b")
    assert await cache_budgets.used("b") == 0
    assert await cache_budgets.reserve("b", 1, None)
    await cache_budgets.release("b")
    await cache_budgets.release("b")
    await cache_budgets.release("never-reserved")
    assert await cache_budgets.used("b") == 0
    assert await cache_budgets.used("never-reserved") == 0


async def test_concurrent_reserve_and_release_balance(cache_budgets: BudgetCounter) -> None:
    for _ in range(50):
        await cache_budgets.reserve("b", 1_000, None)
    work = [cache_budgets.reserve("b", 1_000, None) for _ in range(300)]
    work += [cache_budgets.release("b") for _ in range(50)]
    await asyncio.gather(*work)
    assert await cache_budgets.used("b") == 300


async def test_a_budget_resets_when_its_period_expires(cache_budgets: BudgetCounter) -> None:
    assert await cache_budgets.reserve("day", 1, ttl_seconds=0.05)
    assert not await cache_budgets.reserve("day", 1, ttl_seconds=0.05)
    for _ in range(200):  # wait for the expiry without asserting how long it took
        if await cache_budgets.used("day") == 0:
            break
        await asyncio.sleep(0.01)
    assert await cache_budgets.reserve("day", 1, ttl_seconds=0.05)


async def test_memory_expiry_is_set_on_first_use_only() -> None:
    clock = [1_000.0]
    budgets = InMemoryBudgetCounter(clock=lambda: clock[0])
    assert await budgets.reserve("b", 5, ttl_seconds=10)
    clock[0] += 6
    assert await budgets.reserve("b", 5, ttl_seconds=10)  # does not push the expiry back
    clock[0] += 5
    assert await budgets.used("b") == 0


async def test_redis_expiry_is_set_on_first_use_only(redis_client: Redis, redis_prefix: str) -> None:
    budgets = RedisBudgetCounter(redis_client, prefix=redis_prefix)
    assert await budgets.reserve("b", 5, ttl_seconds=100)
    await redis_client.pexpire(budgets.key_for("b"), 50_000)
    assert await budgets.reserve("b", 5, ttl_seconds=100)
    assert 0 < await redis_client.pttl(budgets.key_for("b")) <= 50_000
    assert await budgets.used("b") == 2
