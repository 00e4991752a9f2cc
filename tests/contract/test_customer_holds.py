"""Customer holds (lock + load, append + release): the same contract composed in process and fused into two
Redis scripts, on a real Redis and a real Redis Cluster (each script's keys in one slot, or the cluster
refuses it with CROSSSLOT)."""

from __future__ import annotations

import asyncio

import pytest

from coordination.holds import RedisHolds
from coordination.locks import LocalCustomerLock, RedisCustomerLock
from decisioning.ports import CustomerHolds, LockTimeout
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, Outcome
from features.memory import InMemoryCustomerCache
from features.redis_cache import RedisCustomerCache
from service.holds import LockThenLoad
from tests.contract.conftest import CACHE_FEATURE_NAMES, REDIS_TARGETS, _store_client

NOW = 1_763_000_000.0


def presented(k: int) -> ContactEvent:
    return ContactEvent(NOW + k, "card_gold", "cards", "web", Outcome.PRESENTED, f"d-{k}")


@pytest.fixture(params=["memory", *REDIS_TARGETS])
def replicas(request: pytest.FixtureRequest) -> list[CustomerHolds]:
    """Two replicas' holds over one store (in process: one replica, twice the same lock)."""
    if request.param == "memory":
        cache, lock = InMemoryCustomerCache(), LocalCustomerLock()
        return [LockThenLoad(lock, cache), LockThenLoad(lock, cache)]
    client, prefix = _store_client(request), request.getfixturevalue("redis_test_prefix")
    return [RedisHolds(RedisCustomerLock(client, prefix=prefix, wait_ms=5_000),
                       RedisCustomerCache(client, feature_names=CACHE_FEATURE_NAMES, prefix=prefix))
            for _ in range(2)]  # fmt: skip


async def test_concurrent_holders_never_overlap_and_each_reads_the_appends_before_it(replicas):
    """The cap property: of n concurrent decisions for one customer, the k-th reads k-1 presentations."""
    first = replicas[0]
    await _store(first, "c-1")  # an empty summary to append to, as after a rebuild
    inside, worst, seen = 0, 0, []

    async def decide(holds: CustomerHolds, k: int) -> None:
        nonlocal inside, worst
        async with holds.hold("c-1") as held:
            inside += 1
            worst = max(worst, inside)
            seen.append(len(held.snapshot.summary.events))
            await asyncio.sleep(0)
            inside -= 1
            await held.append_and_release([presented(k)], NOW + k)

    await asyncio.gather(*(decide(replicas[k % 2], k) for k in range(12)))
    assert worst == 1
    assert sorted(seen) == list(range(12))
    async with first.hold("c-1") as held:
        assert len(held.snapshot.summary.events) == 12


async def test_the_append_releases_the_customer_before_the_block_ends(replicas):
    await _store(replicas[0], "c-1")
    async with replicas[0].hold("c-1") as held:
        await held.append_and_release([presented(1)], NOW + 1)
        async with asyncio.timeout(2), replicas[1].hold("c-1") as other:  # not waiting for the first block
            assert other.snapshot.summary.events == (presented(1),)


async def test_a_block_left_without_an_append_releases_the_customer(replicas):
    with pytest.raises(RuntimeError):
        async with replicas[0].hold("c-1"):
            raise RuntimeError("the decision failed")
    async with asyncio.timeout(2), replicas[1].hold("c-1") as held:
        assert held.snapshot.features is None  # loaded under the lock: an unknown customer


@pytest.fixture(params=REDIS_TARGETS)
def redis_store(request: pytest.FixtureRequest) -> tuple:
    """(client, prefix) on the real Redis and the real Redis Cluster."""
    return _store_client(request), request.getfixturevalue("redis_test_prefix")


async def test_a_busy_customer_times_out_and_the_other_holders_lock_stays(redis_store):
    client, prefix = redis_store
    lock = RedisCustomerLock(client, prefix=prefix, wait_ms=30)
    holds = RedisHolds(lock, RedisCustomerCache(client, feature_names=CACHE_FEATURE_NAMES, prefix=prefix))
    await client.set(lock.key("c-1"), "holder", px=5_000)
    with pytest.raises(LockTimeout):
        async with holds.hold("c-1"):
            pass
    assert await client.get(lock.key("c-1")) == b"holder"


async def _store(holds: CustomerHolds, customer_id: str) -> None:
    await holds.cache.store_summary(customer_id, HistorySummary())
