"""`nbo train`'s reading of the history, on SQLite and PostgreSQL: responses in any channel, bounded
chunks, and point-in-time features (a customer's features change after a decision; the training row of
that decision holds the values it was made on)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.train import TrainOptions, run_training
from decisioning.engine import DecisionRequest, decide
from decisioning.quality import validate_features
from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.summary import HistorySummary
from decisioning.types import DAY, Context, Direction, Outcome
from features.memory import InMemoryCustomerCache
from history import SqlHistory
from history.database import make_engine
from history.training_rows import stream_training_contacts
from models.demo.customers import generate_customers
from models.prior import PriorScorer
from models.registry import ModelRegistry
from policies.loader import load_catalogue

T0 = 1_790_000_000.0
DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def presented(decision_id: str, offer_id: str, at: float, channel: str = "web") -> DecisionRecord:
    c = ContactRecord(decision_id, "c-1", at, channel, Direction.INBOUND, offer_id, "cards", Outcome.PRESENTED)
    return DecisionRecord(
        decision_id, "c-1", at, channel, None, None, False, "m", "cat", (c,), features=(1.0,), feature_schema="s"
    )


def answer(decision_id: str, offer_id: str, outcome: Outcome, at: float, channel: str) -> ResponseRecord:
    return ResponseRecord(f"{decision_id}:{outcome}", "c-1", offer_id, channel, outcome, at, decision_id, "cards")


async def read_all(url: str, until: float, chunk_rows: int) -> list[list]:
    engine = make_engine(url)
    try:
        return [chunk async for chunk in stream_training_contacts(engine, None, until, chunk_rows=chunk_rows)]
    finally:
        await engine.dispose()


async def test_contacts_stream_oldest_first_in_bounded_chunks_with_responses_from_any_channel(url: str):
    history = SqlHistory(url)
    await history.start()
    try:
        for i in range(7):
            await history.record_decision(presented(f"d-{i}", "card_gold", T0 + i))
        await history.record_response(answer("d-0", "card_gold", Outcome.ACCEPTED, T0 + DAY, "call_centre"))
        await history.record_response(answer("d-1", "card_gold", Outcome.DECLINED, T0 + 60, "branch"))
        await history.record_response(answer("d-2", "card_gold", Outcome.NOT_DISPLAYED, T0 + 3, "web"))
        await history.record_response(
            answer("d-3", "card_gold", Outcome.ACCEPTED, T0 + 40 * DAY, "email")
        )  # after until
    finally:
        await history.close()
    chunks = await read_all(url, until=T0 + 10 * DAY, chunk_rows=3)
    assert [len(c) for c in chunks] == [3, 3, 1]
    rows = [r for c in chunks for r in c]
    assert [r.decision_id for r in rows] == [f"d-{i}" for i in range(7)]
    assert rows[0].accepted_at == pytest.approx(T0 + DAY) and rows[0].refused_at is None
    assert rows[1].refused_at == pytest.approx(T0 + 60) and rows[1].accepted_at is None
    assert rows[2].not_displayed_at == pytest.approx(T0 + 3)
    assert rows[3].accepted_at is None  # responses after `until` are not known yet
    assert rows[4].features == [1.0] and rows[4].feature_schema == "s"


async def test_the_training_row_of_a_decision_holds_the_features_it_was_made_on(url: str, tmp_path: Path):
    catalogue = load_catalogue(DEMO)
    customers = generate_customers(300, catalogue.features, seed=3, now=T0)
    cache = InMemoryCustomerCache()
    await cache.put_features(customers, at=T0 - DAY)  # the nightly bulk load before the decisions
    history = SqlHistory(url)
    await history.start()
    made = []
    try:
        for i, (cid, _) in enumerate(customers):
            now = T0 + i * 60
            snapshot = await cache.load(cid)
            features = validate_features(catalogue.features, cid, snapshot, now)
            request = DecisionRequest(f"d-{i:04d}", features, Context("web", now, "home_hero"), 1)
            decision = decide(catalogue, request, HistorySummary(), PriorScorer())
            if not decision.offers:
                continue
            await history.record_decision(decision.to_record())
            outcome = Outcome.ACCEPTED if i % 4 == 0 else Outcome.DECLINED
            offer_id = decision.offers[0].offer.id
            await history.record_response(
                ResponseRecord(f"r-{i}", cid, offer_id, "call_centre", outcome, now + 3600, decision.decision_id)
            )
            made.append((decision.decision_id, cid, features.values))
        # After the decisions, the next bulk load changes the first customer's features.
        first_decision, first_customer, then = made[0]
        later = {**dict(customers)[first_customer], "age": 99.0, "income_monthly": then["income_monthly"] + 12_345.0}
        await cache.put_features([(first_customer, later)], at=T0 + 2 * DAY)
    finally:
        await history.close()

    registry = ModelRegistry(tmp_path / "models")
    out = tmp_path / "rows.parquet"
    options = TrainOptions(url, catalogue, registry, "t", until=T0 + 30 * DAY, dataset_out=out, chunk_rows=64)
    outcome = await run_training(options)

    rows = pq.read_table(out).to_pylist()
    assert len(rows) == outcome.rows == len(made)
    row = next(r for r in rows if r["decision_id"] == first_decision)
    assert row["age"] == then["age"] != 99.0 and row["income_monthly"] == then["income_monthly"]
    assert row["label"] == 1 and row["channel"] == "web"  # accepted in the call centre: another channel
    assert registry.pointers("t").champion is None  # a candidate, not the champion
    assert registry.metadata("t", outcome.version).metrics["comparison"]["better"] in ("global", "per_offer")


async def test_promotion_needs_a_strictly_better_holdout_log_loss(url: str, tmp_path: Path):
    import numpy as np

    from models.retraining import decide_promotion

    y = np.array([0, 1, 0, 1])
    same = decide_promotion(y, np.array([0.2, 0.7, 0.3, 0.6]), np.array([0.2, 0.7, 0.3, 0.6]), "v1")
    better = decide_promotion(y, np.array([0.1, 0.9, 0.1, 0.9]), np.array([0.2, 0.7, 0.3, 0.6]), "v1")
    assert (same.promote, better.promote) == (False, True)
    assert "not promoted" in same.reason and "promoted" in better.reason
    del url, tmp_path
