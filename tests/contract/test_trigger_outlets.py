"""Trigger claims and delivery outlets: one suite on the embedded adapters and on the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from coordination.claims import InMemoryTriggerClaims, RedisTriggerClaims
from decisioning.triggers import DeliveredOffer, TriggerDelivery
from delivery.outlets import FanOut, InProcessDeliveries, RedisStreamDeliveries
from tests.contract.conftest import REDIS_TARGETS, _store_client


def delivery(customer: str = "c-1", trigger: str = "competitor_transfer") -> TriggerDelivery:
    offer = DeliveredOffer("retention_fee_waiver", 1, "No fees for a year", "On us.", 0.2, 60.0, 12.0, "https://x")
    return TriggerDelivery(
        f"tr-{uuid.uuid4().hex}", trigger, customer, "email", f"d-{uuid.uuid4().hex}", "transfer_out",
        1_764_583_200.0, (offer,), "cat-1", "model-1",
    )  # fmt: skip


@pytest.fixture(params=["memory", *REDIS_TARGETS])
def claims(request: pytest.FixtureRequest) -> object:
    """The claims under contract: in process, on the real Redis, on a real Redis Cluster."""
    if request.param == "memory":
        return InMemoryTriggerClaims()
    return RedisTriggerClaims(_store_client(request), prefix=request.getfixturevalue("redis_test_prefix"))


@pytest.fixture(params=["memory", *REDIS_TARGETS])
def outlet(request: pytest.FixtureRequest) -> object:
    """The primary outlet under contract: the in-process queue, the Redis Stream (single server, cluster)."""
    if request.param == "memory":
        return InProcessDeliveries(maxlen=100)
    prefix = request.getfixturevalue("redis_test_prefix")
    return RedisStreamDeliveries(_store_client(request), prefix=prefix, maxlen=100)


async def test_a_slot_is_taken_once_per_customer_and_trigger_until_released(claims):
    assert await claims.claim("c-1", "t", 60)
    assert not await claims.claim("c-1", "t", 60)
    assert await claims.claim("c-1", "other", 60) and await claims.claim("c-2", "t", 60)
    await claims.release("c-1", "t")
    assert await claims.claim("c-1", "t", 60)


async def test_a_slot_frees_itself_when_its_period_ends(claims):
    assert await claims.claim("c-1", "t", 0.05)
    assert not await claims.claim("c-1", "t", 0.05)
    await asyncio.sleep(0.12)
    assert await claims.claim("c-1", "t", 0.05)


async def test_concurrent_events_fire_a_trigger_once(claims):
    taken = await asyncio.gather(*(claims.claim("c-9", "t", 60) for _ in range(200)))
    assert sum(taken) == 1


async def test_a_redis_claim_is_one_key_tagged_by_customer_expiring_with_the_period(redis_client, redis_prefix):
    prefix = redis_prefix
    claims = RedisTriggerClaims(redis_client, prefix=prefix)
    await claims.claim("c-000042", "competitor_transfer", 7 * 86_400)
    key = f"{prefix}:tr:{{c-000042}}:competitor_transfer"
    assert claims.key_for("c-000042", "competitor_transfer") == key
    assert 7 * 86_400_000 - 5_000 < await redis_client.pttl(key) <= 7 * 86_400_000


async def test_deliveries_are_read_oldest_first_after_the_last_id_seen(outlet):
    sent = [delivery(f"c-{i}") for i in range(5)]
    for d in sent:
        assert await outlet.publish(d) == [outlet.name]
    page = await outlet.read(None, 3)
    assert [d["customer_id"] for _, d in page] == ["c-0", "c-1", "c-2"]
    rest = await outlet.read(page[-1][0], 100)
    assert [d["delivery_id"] for _, d in rest] == [d.delivery_id for d in sent[3:]]
    assert rest[0][1] == sent[3].to_dict()
    assert await outlet.read(rest[-1][0], 100) == []


async def test_the_outlet_keeps_about_its_maximum_length(outlet):
    for i in range(1_000):
        await outlet.publish(delivery(f"c-{i}"))
    kept = await outlet.read(None, 1000)
    # Redis trims approximately (whole macro nodes): about the maximum, never all of them.
    assert 100 <= len(kept) < 400 and kept[-1][1]["customer_id"] == "c-999"


async def test_a_stream_entry_carries_the_json_and_the_fields_to_route_by(redis_client, redis_prefix):
    prefix = redis_prefix
    stream = RedisStreamDeliveries(redis_client, prefix=prefix)
    d = delivery("c-000042")
    await stream.publish(d)
    [(_, fields)] = await redis_client.xrange(f"{prefix}:triggers")
    assert orjson.loads(fields[b"delivery"]) == d.to_dict()
    assert (fields[b"trigger"], fields[b"channel"], fields[b"customer_id"]) == (
        b"competitor_transfer", b"email", b"c-000042",
    )  # fmt: skip


def test_an_in_process_id_that_is_not_a_number_is_refused():
    with pytest.raises(ValueError, match="whole number"):
        asyncio.run(InProcessDeliveries().read("1764583200000-0", 10))


class Refusing:
    name = "webhook"

    def __init__(self) -> None:
        self.closed = False

    def submit(self, delivery: TriggerDelivery) -> bool:
        return False

    async def close(self) -> None:
        self.closed = True


async def test_the_fan_out_names_the_sinks_that_took_a_delivery_and_closes_them_all():
    refusing = Refusing()
    fan = FanOut(InProcessDeliveries(), [refusing])
    assert await fan.publish(delivery()) == ["queue"]
    assert len(await fan.read(None, 10)) == 1
    await fan.close()
    assert refusing.closed
