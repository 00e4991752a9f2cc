"""One contract for every `CustomerCache`: the in-process cache and Redis must behave the same.

The cache fixtures (`cache_store`, `redis_cache`) live in conftest.py; Redis must be reachable.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from decisioning.catalogue import FeatureSpec, FeatureType
from decisioning.ports import CustomerCache, CustomerSnapshot, FeatureUpdate, WindowedCount
from decisioning.quality import validate_features
from decisioning.summary import MAX_EVENTS, RETENTION_SECONDS, HistorySummary
from decisioning.types import DAY, ContactEvent, FeatureValue, Outcome
from features.bulk import load_features
from features.redis_cache import RedisCustomerCache
from features.updates import MAX_COUNTED_EVENTS

NOW = 1_763_000_000.0


def event(
    at: float, offer: str = "card_gold", outcome: Outcome = Outcome.PRESENTED, did: str = "d1"
) -> ContactEvent:
    return ContactEvent(at, offer, "cards", "web", outcome, did)


async def test_features_and_load_time_round_trip(cache_store: CustomerCache) -> None:
    rows = [
        ("c1", {"age": 41.0, "segment": "mass", "has_mortgage": True, "income_monthly": 3100.5}),
        ("c2", {"age": 67.0, "segment": "senior", "has_mortgage": False, "credit_score": None}),
    ]
    assert await cache_store.put_features(rows, at=NOW) == 2
    first = await cache_store.load("c1")
    assert first.customer_id == "c1"
    assert {k: v for k, v in first.features.items() if v is not None} == rows[0][1]
    assert first.feature_times["*"] == NOW
    second = await cache_store.load("c2")
    assert second.features["segment"] == "senior"
    assert second.features["has_mortgage"] is False
    assert second.features.get("credit_score") is None


async def test_a_new_batch_replaces_batch_features_keeps_event_ones(cache_store: CustomerCache) -> None:
    await cache_store.put_features([("c1", {"age": 41.0, "segment": "mass"})], at=NOW)
    await cache_store.apply_updates("c1", [FeatureUpdate("app_pos_payments", "incr", 1)], at=NOW + 5)
    await cache_store.put_features([("c1", {"age": 42.0})], at=NOW + DAY)
    snapshot = await cache_store.load("c1")
    assert snapshot.features["age"] == 42.0
    assert snapshot.features.get("segment") is None
    assert snapshot.features["app_pos_payments"] == 1
    assert snapshot.feature_times["*"] == NOW + DAY
    assert snapshot.feature_times["app_pos_payments"] == NOW + 5


async def test_unknown_customer(cache_store: CustomerCache) -> None:
    snapshot = await cache_store.load("nobody")
    assert snapshot.customer_id == "nobody"
    assert snapshot.features is None
    assert dict(snapshot.feature_times) == {}
    assert snapshot.summary is None


async def test_a_missing_summary_stays_missing(cache_store: CustomerCache) -> None:
    await cache_store.put_features([("c1", {"age": 30.0})], at=NOW)
    await cache_store.append_events("c1", [event(NOW)], now=NOW)
    assert (await cache_store.load("c1")).summary is None


async def test_an_empty_summary_is_present_and_takes_events(cache_store: CustomerCache) -> None:
    await cache_store.store_summary("c1", HistorySummary())
    assert (await cache_store.load("c1")).summary == HistorySummary()
    events = [event(NOW + 1.25), event(NOW + 2.5, outcome=Outcome.CLICKED)]
    await cache_store.append_events("c1", events, now=NOW + 3)
    snapshot = await cache_store.load("c1")
    assert snapshot.summary == HistorySummary(tuple(events))
    assert snapshot.features is None  # a summary alone does not make a customer known


async def test_store_summary_replaces_and_keeps_full_time_precision(cache_store: CustomerCache) -> None:
    await cache_store.store_summary("c1", HistorySummary((event(NOW), event(NOW + 10))))
    replacement = HistorySummary((event(NOW + 20.123456, did="d9", offer="loan"),))
    await cache_store.store_summary("c1", replacement)
    assert (await cache_store.load("c1")).summary == replacement


async def test_remove_events_takes_out_those_events_once_and_keeps_the_rest(cache_store: CustomerCache) -> None:
    mine, theirs = [event(NOW + 1, did="d-mine"), event(NOW + 1, did="d-mine", offer="loan")], event(NOW + 2)
    await cache_store.store_summary("c1", HistorySummary((event(NOW),)))
    await cache_store.append_events("c1", mine, now=NOW + 1)
    await cache_store.append_events("c1", [theirs], now=NOW + 2)  # a decision made meanwhile
    await cache_store.remove_events("c1", mine)
    assert (await cache_store.load("c1")).summary == HistorySummary((event(NOW), theirs))
    await cache_store.remove_events("c1", mine)  # gone already: nothing else is taken
    assert (await cache_store.load("c1")).summary == HistorySummary((event(NOW), theirs))


async def test_appends_are_kept_in_time_order(cache_store: CustomerCache) -> None:
    await cache_store.store_summary("c1", HistorySummary((event(NOW),)))
    await cache_store.append_events("c1", [event(NOW + 20, did="d3")], now=NOW + 20)
    await cache_store.append_events("c1", [event(NOW + 10, did="d2")], now=NOW + 20)  # a late arrival
    summary = (await cache_store.load("c1")).summary
    assert [e.decision_id for e in summary.events] == ["d1", "d2", "d3"]


async def test_concurrent_appends_are_all_kept(cache_store: CustomerCache) -> None:
    await cache_store.store_summary("c1", HistorySummary())
    events = [event(NOW + i, did=f"d{i}") for i in range(200)]
    await asyncio.gather(*(cache_store.append_events("c1", [e], now=NOW + 200) for e in events))
    summary = (await cache_store.load("c1")).summary
    assert sorted(e.decision_id for e in summary.events) == sorted(e.decision_id for e in events)


async def test_appends_keep_the_newest_max_events(cache_store: CustomerCache) -> None:
    old = HistorySummary(tuple(event(NOW + i, did=f"old{i}") for i in range(MAX_EVENTS)))
    await cache_store.store_summary("c1", old)
    new = [event(NOW + MAX_EVENTS + i, did=f"new{i}") for i in range(3)]
    await cache_store.append_events("c1", new, now=NOW + 2 * MAX_EVENTS)
    events = (await cache_store.load("c1")).summary.events
    assert len(events) == MAX_EVENTS
    assert events[0].decision_id == "old3"
    assert events[-1].decision_id == "new2"


async def test_appends_drop_events_past_the_retention(cache_store: CustomerCache) -> None:
    await cache_store.store_summary("c1", HistorySummary((event(NOW, did="ancient"), event(NOW + 2 * DAY))))
    later = NOW + RETENTION_SECONDS + DAY
    await cache_store.append_events("c1", [event(later, did="today")], now=later)
    assert [e.decision_id for e in (await cache_store.load("c1")).summary.events] == ["d1", "today"]


async def test_event_updates_incr_set_max(cache_store: CustomerCache) -> None:
    await cache_store.put_features([("c1", {"age": 30.0})], at=NOW)
    await cache_store.apply_updates(
        "c1",
        [
            FeatureUpdate("card_declined_count", "incr", 1),
            FeatureUpdate("card_declined_last_at", "max", NOW + 1),
            FeatureUpdate("last_page", "set", "mortgage_calculator"),
            FeatureUpdate("flag", "set", True),
        ],
        at=NOW + 1,
    )
    await cache_store.apply_updates(
        "c1",
        [
            FeatureUpdate("card_declined_count", "incr", 2.5),
            FeatureUpdate("card_declined_last_at", "max", NOW - 9),
        ],
        at=NOW + 2,
    )
    snapshot = await cache_store.load("c1")
    assert snapshot.features["card_declined_count"] == 3.5
    assert snapshot.features["card_declined_last_at"] == NOW + 1  # max never moves back
    assert snapshot.features["last_page"] == "mortgage_calculator"
    assert snapshot.features["flag"] is True
    assert snapshot.features["age"] == 30.0
    assert snapshot.feature_times["card_declined_count"] == NOW + 2
    assert snapshot.feature_times["last_page"] == NOW + 1


async def test_set_can_clear_a_value(cache_store: CustomerCache) -> None:
    await cache_store.apply_updates("c1", [FeatureUpdate("salary_last_amount", "set", 2500)], at=NOW)
    await cache_store.apply_updates("c1", [FeatureUpdate("salary_last_amount", "set", None)], at=NOW + 1)
    assert (await cache_store.load("c1")).features["salary_last_amount"] is None


async def test_incr_and_max_over_a_cleared_or_text_value_start_afresh(cache_store: CustomerCache) -> None:
    cleared = [FeatureUpdate("n", "set", None), FeatureUpdate("t", "set", "soon")]
    await cache_store.apply_updates("c1", cleared, at=NOW)
    await cache_store.apply_updates("c1", [FeatureUpdate("n", "incr", 2), FeatureUpdate("t", "max", 7)], at=NOW)
    features = (await cache_store.load("c1")).features
    assert (features["n"], features["t"]) == (2, 7)


async def test_an_event_makes_a_new_customer_known_with_event_features(cache_store: CustomerCache) -> None:
    await cache_store.apply_updates("new", [FeatureUpdate("app_login_last_at", "max", NOW)], at=NOW)
    snapshot = await cache_store.load("new")
    assert dict(snapshot.features) == {"app_login_last_at": NOW}
    assert "*" not in snapshot.feature_times


async def test_a_bad_update_applies_nothing(cache_store: CustomerCache) -> None:
    bad = [FeatureUpdate("n", "incr", 1), FeatureUpdate("m", "incr", "three")]
    with pytest.raises(ValueError, match="number"):
        await cache_store.apply_updates("c1", bad, at=NOW)
    with pytest.raises(ValueError, match="op"):
        await cache_store.apply_updates("c1", [FeatureUpdate("n", "append", 1)], at=NOW)
    assert (await cache_store.load("c1")).features is None


async def test_concurrent_event_updates_lose_nothing(cache_store: CustomerCache) -> None:
    times = [NOW + i for i in range(200)]
    random.Random(7).shuffle(times)
    await asyncio.gather(
        *(
            cache_store.apply_updates(
                "c1", [FeatureUpdate("visits", "incr", 1), FeatureUpdate("last_at", "max", t)], at=t
            )
            for t in times
        )
    )
    features = (await cache_store.load("c1")).features
    assert features["visits"] == 200
    assert features["last_at"] == NOW + 199


# --- windowed counts ("count" updates): event times, counted at the decision's time ---------------------
WINDOW = 30 * DAY
COUNTED = (FeatureSpec("transfers_30d", FeatureType.NUMBER, 0, minimum=0, maximum=1e5, source="event"),)


def transfer() -> list[FeatureUpdate]:
    return [FeatureUpdate("transfers_30d", "count", None, window=WINDOW)]


def count_at(snapshot: CustomerSnapshot, now: float) -> FeatureValue:
    return validate_features(COUNTED, snapshot.customer_id, snapshot, now).values["transfers_30d"]


async def test_a_windowed_count_is_the_events_in_the_window_before_the_decision(cache_store: CustomerCache) -> None:
    for at in (NOW - 40 * DAY, NOW - 10 * DAY, NOW - DAY):
        await cache_store.apply_updates("c1", transfer(), at=at)
    snapshot = await cache_store.load("c1")
    assert count_at(snapshot, NOW) == 2
    assert count_at(snapshot, NOW + 25 * DAY) == 1  # the same events, read later: the count decayed
    assert count_at(snapshot, NOW + 30 * DAY) == 0
    assert snapshot.feature_times["transfers_30d"] == NOW - DAY
    # Trimmed on write: the time 40 days before the newest event can never be counted again.
    assert snapshot.windowed["transfers_30d"] == WindowedCount(WINDOW, (NOW - 10 * DAY, NOW - DAY))


async def test_windowed_counts_keep_late_events_in_order_and_full_precision(cache_store: CustomerCache) -> None:
    for at in (NOW + 0.123456, NOW - 5 * DAY, NOW - 45 * DAY, NOW - 2 * DAY + 0.5):
        await cache_store.apply_updates("c1", transfer(), at=at)
    counted = (await cache_store.load("c1")).windowed["transfers_30d"]
    assert counted.times == (NOW - 5 * DAY, NOW - 2 * DAY + 0.5, NOW + 0.123456)


async def test_windowed_counts_keep_at_most_the_newest_max_counted_events(cache_store: CustomerCache) -> None:
    for i in range(MAX_COUNTED_EVENTS + 20):
        await cache_store.apply_updates("c1", transfer(), at=NOW + i)
    counted = (await cache_store.load("c1")).windowed["transfers_30d"]
    assert counted.times == tuple(NOW + i for i in range(20, MAX_COUNTED_EVENTS + 20))


async def test_concurrent_counted_events_lose_nothing(cache_store: CustomerCache) -> None:
    times = [NOW + i for i in range(100)]
    random.Random(3).shuffle(times)
    await asyncio.gather(*(cache_store.apply_updates("c1", transfer(), at=t) for t in times))
    counted = (await cache_store.load("c1")).windowed["transfers_30d"]
    assert counted.times == tuple(sorted(times))


async def test_a_counted_event_makes_a_customer_known_and_sits_beside_other_updates(
    cache_store: CustomerCache,
) -> None:
    await cache_store.apply_updates("new", [*transfer(), FeatureUpdate("churn_signal_at", "max", NOW)], at=NOW)
    snapshot = await cache_store.load("new")
    assert dict(snapshot.features) == {"churn_signal_at": NOW}  # the count is not a stored value
    assert count_at(snapshot, NOW) == 1


async def test_a_count_without_a_window_applies_nothing(cache_store: CustomerCache) -> None:
    bad = [FeatureUpdate("n", "incr", 1), FeatureUpdate("transfers_30d", "count", None)]
    with pytest.raises(ValueError, match="window"):
        await cache_store.apply_updates("c1", bad, at=NOW)
    with pytest.raises(ValueError, match="window"):
        await cache_store.apply_updates("c1", [FeatureUpdate("n", "incr", 1, window=DAY)], at=NOW)
    assert (await cache_store.load("c1")).features is None


async def test_a_changed_window_applies_from_the_next_event(cache_store: CustomerCache) -> None:
    await cache_store.apply_updates("c1", transfer(), at=NOW - 20 * DAY)
    await cache_store.apply_updates("c1", [FeatureUpdate("transfers_30d", "count", None, window=7 * DAY)], at=NOW)
    assert (await cache_store.load("c1")).windowed["transfers_30d"] == WindowedCount(7 * DAY, (NOW,))


async def test_count_counts_customers_with_features(cache_store: CustomerCache) -> None:
    assert await cache_store.count() == 0
    await cache_store.put_features([(f"c{i}", {"age": 20.0 + i}) for i in range(25)], at=NOW)
    await cache_store.store_summary("only-history", HistorySummary())
    assert await cache_store.count() == 25


async def test_ping(cache_store: CustomerCache) -> None:
    assert await cache_store.ping() is True


# --- Redis only: layout and TTLs that the in-process cache has no equivalent of ----------------------
async def test_redis_keys_share_the_customer_hash_tag_and_expire(redis_cache: RedisCustomerCache) -> None:
    await redis_cache.put_features([("c-1", {"age": 30.0})], at=NOW)
    await redis_cache.store_summary("c-1", HistorySummary())
    features_key, summary_key = redis_cache.features_key("c-1"), redis_cache.summary_key("c-1")
    assert features_key.endswith("{c-1}") and summary_key.endswith("{c-1}")
    assert 0 < await redis_cache.client.ttl(features_key) <= redis_cache.feature_ttl
    assert redis_cache.feature_ttl < await redis_cache.client.ttl(summary_key) <= redis_cache.summary_ttl


async def test_redis_ignores_batch_features_packed_under_another_schema(
    redis_client: Redis, redis_prefix: str
) -> None:
    old = RedisCustomerCache(redis_client, feature_names=["age", "segment"], prefix=redis_prefix)
    new = RedisCustomerCache(redis_client, feature_names=["segment", "age"], prefix=redis_prefix)
    await old.put_features([("c1", {"age": 30.0, "segment": "mass"})], at=NOW)
    await old.apply_updates("c1", [FeatureUpdate("visits", "incr", 1)], at=NOW)
    snapshot = await new.load("c1")
    assert dict(snapshot.features) == {"visits": 1}  # never 'age' read as 'segment'
    assert "*" not in snapshot.feature_times


async def test_redis_packs_batch_features_in_one_field(redis_cache: RedisCustomerCache) -> None:
    await redis_cache.put_features([("c1", {"segment": "mass", "age": 30.0})], at=NOW)
    fields = await redis_cache.client.hgetall(redis_cache.features_key("c1"))
    assert list(fields) == [b"f"]
    packed = orjson.loads(fields[b"f"])
    assert packed[1:] == [NOW, 30.0, None, "mass", None, None]


async def test_redis_keeps_windowed_counts_in_the_customer_hash(redis_cache: RedisCustomerCache) -> None:
    # In the hash the one-call load already reads, and under its TTL: no extra round trip, no extra key.
    await redis_cache.apply_updates("c1", transfer(), at=NOW)
    key = redis_cache.features_key("c1")
    assert await redis_cache.client.hget(key, "w:transfers_30d") == f"{WINDOW!r}|{NOW!r}".encode()
    assert 0 < await redis_cache.client.ttl(key) <= redis_cache.feature_ttl


async def test_redis_refuses_a_decoding_client() -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisCustomerCache(Redis(decode_responses=True), feature_names=["age"])


# --- Bulk load from files: validated, pipelined, with a report -----------------------------------------
SPECS = (
    FeatureSpec("age", FeatureType.NUMBER, 40, minimum=16, maximum=110),
    FeatureSpec("income_monthly", FeatureType.NUMBER, 2500, minimum=0),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass", categories=("mass", "affluent", "senior")),
    FeatureSpec("has_mortgage", FeatureType.BOOL, False),
    FeatureSpec("credit_score", FeatureType.NUMBER, 600, minimum=300, maximum=850),
)


def write_customers(path: Path, rows: int) -> Path:
    table = pa.table(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "age": [str(18 + i % 80) if i % 10 else "999" for i in range(rows)],  # every 10th out of range
            "segment": ["Mass" if i % 2 else "affluent" for i in range(rows)],
            "has_mortgage": ["yes" if i % 3 == 0 else "no" for i in range(rows)],
            "credit_score": [None if i % 4 == 0 else str(600 + i % 200) for i in range(rows)],
            "shoe_size": ["42"] * rows,
        }
    )
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
async def test_bulk_load_validates_reports_and_loads(
    cache_store: CustomerCache, tmp_path: Path, suffix: str
) -> None:
    path = write_customers(tmp_path / f"customers{suffix}", 1_050)
    seen: list[int] = []
    report = await load_features(path, cache_store, SPECS, batch_size=100, progress=seen.append, at=NOW)
    assert report.loaded == 1_050 and report.rows_rejected == 0
    assert seen == [*range(100, 1_001, 100), 1_050]
    assert report.rejected == {"age": 105}
    assert report.defaulted == {"age": 105, "income_monthly": 1_050, "credit_score": 263}
    assert report.missing_columns == {"income_monthly"} and report.unknown_columns == {"shoe_size"}
    assert await cache_store.count() == 1_050
    first, second = await cache_store.load("c0"), await cache_store.load("c1")
    assert first.features["age"] is None  # stored as missing: decisions will say it was defaulted
    assert (first.features["segment"], first.features["has_mortgage"]) == ("affluent", True)
    assert (second.features["age"], second.features["segment"], second.features["credit_score"]) == (
        19.0,
        "mass",
        601.0,
    )
    assert second.feature_times["*"] == NOW


async def test_bulk_load_refuses_a_file_without_customer_ids(
    cache_store: CustomerCache, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,age\nc1,40\n")
    with pytest.raises(ValueError, match="customer_id"):
        await load_features(path, cache_store, SPECS)
    assert await cache_store.count() == 0


async def test_bulk_load_of_typed_parquet_columns(cache_store: CustomerCache, tmp_path: Path) -> None:
    table = pa.table(
        {
            "customer_id": pa.array(["a", "b", "c", None]),
            "age": pa.array([30, None, 300, 50], pa.int64()),
            "income_monthly": pa.array([1500.5, float("nan"), -1.0, 0.0]),
            "has_mortgage": pa.array([True, None, False, True]),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    report = await load_features(tmp_path / "typed.parquet", cache_store, SPECS, at=NOW)
    assert (report.rows, report.loaded, report.rows_rejected) == (4, 3, 1)
    assert report.rejected == {"age": 1, "income_monthly": 1}
    a, b, c = [(await cache_store.load(cid)).features for cid in "abc"]
    assert (a["age"], a["income_monthly"], a["has_mortgage"]) == (30.0, 1500.5, True)
    assert (b["age"], b["income_monthly"], b["has_mortgage"]) == (None, None, None)
    assert (c["age"], c["income_monthly"], c["has_mortgage"]) == (None, None, False)
