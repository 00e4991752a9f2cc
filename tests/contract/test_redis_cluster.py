"""What only a Redis Cluster can show: keys spread over the masters, each decision in one slot, the client
queueing for connections, and the whole service deciding on a cluster (the adapters' contract suites run
on the cluster through the parametrised fixtures of conftest.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError

from app.main import create_app
from app.settings import Settings
from coordination.budgets import RedisBudgetCounter
from coordination.locks import RedisCustomerLock
from features.redis_cache import RedisCustomerCache
from features.redis_client import BlockingRedisCluster, RedisClient, redis_client
from tests.api.conftest import ADULT, factory_for
from tests.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.services
NAMES = ("age", "segment")


async def test_a_customers_keys_share_one_slot_and_customers_spread_over_the_masters(
    redis_cluster_client: RedisClient, redis_test_prefix: str
):
    assert isinstance(redis_cluster_client, RedisCluster)
    cache = RedisCustomerCache(redis_cluster_client, feature_names=NAMES, prefix=redis_test_prefix)
    locks = RedisCustomerLock(redis_cluster_client, prefix=redis_test_prefix)
    customers = [f"c-{i}" for i in range(300)]
    await cache.put_features([(c, {"age": 40, "segment": "mass"}) for c in customers], at=time.time())

    slot = redis_cluster_client.keyslot
    for c in customers:  # load() is one script over these keys; the lock is in the same slot too
        assert slot(cache.features_key(c)) == slot(cache.summary_key(c)) == slot(locks.key(c))
    masters = {redis_cluster_client.get_node_from_key(cache.features_key(c)).name for c in customers}
    assert len(masters) == 3  # a cluster actually shares the customers out
    assert (await cache.load("c-7")).features == {"age": 40, "segment": "mass"}
    assert await cache.count() == 300  # SCAN over every master


async def test_budget_counters_live_on_several_masters(redis_cluster_client: RedisClient, redis_test_prefix: str):
    budgets = RedisBudgetCounter(redis_cluster_client, prefix=redis_test_prefix)
    keys = [f"budget:offer_{i}:2026-12-01" for i in range(30)]
    assert all(await asyncio.gather(*(budgets.reserve(k, 1, 60) for k in keys)))
    assert not any(await asyncio.gather(*(budgets.reserve(k, 1, 60) for k in keys)))
    nodes = {redis_cluster_client.get_node_from_key(budgets.key_for(k)).name for k in keys}
    assert len(nodes) > 1


async def test_the_cluster_client_queues_for_connections_instead_of_failing(redis_cluster: LocalRedisCluster):
    plain = RedisCluster.from_url(redis_cluster.url.replace("redis+cluster", "redis"), max_connections=2)
    blocking = redis_client(redis_cluster.url, max_connections=2)
    assert isinstance(blocking, BlockingRedisCluster)
    try:
        with pytest.raises(MaxConnectionsError):  # what redis-py's own client does past its limit
            await asyncio.gather(*(plain.get("nbo-absent-key") for _ in range(200)))
        assert await asyncio.gather(*(blocking.get("nbo-absent-key") for _ in range(200))) == [None] * 200
        pipes = [blocking.pipeline(transaction=False).get("nbo-absent-key") for _ in range(50)]
        assert await asyncio.gather(*(p.execute() for p in pipes)) == [[None]] * 50
    finally:
        await plain.aclose()
        await blocking.aclose()


def test_a_cluster_url_naming_another_database_is_refused():
    with pytest.raises(ValueError, match="only database 0"):
        redis_client("redis+cluster://127.0.0.1:7000/2")


async def test_the_service_decides_on_a_cluster_in_write_behind_mode(
    redis_cluster: LocalRedisCluster, redis_cluster_client: RedisClient, redis_test_prefix: str, tmp_path: Path
):
    settings = Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        features_file=None,
        model_dir=tmp_path / "models",
        redis_url=redis_cluster.url,
        redis_prefix=redis_test_prefix,
        history_mode="write_behind",
        auth="none",  # keys are tested in tests/api; here the cluster is the point
    )
    app = create_app(settings, service_factory=factory_for(None))
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://nbo.test")
        async with client:
            await app.state.service.cache.put_features([("c-adult", ADULT)], at=time.time())
            asked = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero", "max_offers": 2}
            decided = await client.post("/v1/decisions", json=asked)
            assert decided.status_code == 200, decided.text
            offer = decided.json()["offers"][0]["offer_id"]
            answer = {"customer_id": "c-adult", "offer_id": offer, "channel": "web", "outcome": "clicked",
                      "decision_id": decided.json()["decision_id"]}  # fmt: skip
            assert (await client.post("/v1/responses", json=answer)).status_code < 300
            event = {"customer_id": "c-adult", "type": "card_declined", "attributes": {"amount": 5}}
            applied = await client.post("/v1/events", json=event)
            assert applied.status_code < 300
            # The demo's card_declined trigger: an SMS decision, published on the cluster's stream.
            [fired] = applied.json()["triggered"]
            assert fired["trigger"] == "card_declined" and fired["published"] == ["stream"], fired
            listed = (await client.get("/v1/customers/c-adult/history")).json()
    outcomes = {row["outcome"] for row in listed["entries"]}
    assert {"presented", "clicked"} <= outcomes  # read back before any drain: from the stream's index
    # The decision, the response and the trigger's decision; its delivery on the triggers stream.
    assert await redis_cluster_client.xlen(f"{redis_test_prefix}:history") == 3
    assert await redis_cluster_client.xlen(f"{redis_test_prefix}:triggers") == 1
