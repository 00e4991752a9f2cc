"""`nbo history retain` leaves what the service still needs: after the old months are removed, the contact
policies decide exactly as before and `nbo train` on the recent contacts builds the same training set and
the same model (issue 19's must-show), on a partitioned PostgreSQL and on SQLite.

Fourteen months of demo decisions are made with the real core (prior scorer) and answered, one customer
in four accepting; today's decisions read each customer's summary, so the demo policies (decline cool-off,
caps) suppress on that history.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from app.train import TrainOptions, run_training
from decisioning.catalogue import Catalogue
from decisioning.engine import DecisionRequest, decide
from decisioning.ports import CustomerSnapshot
from decisioning.quality import validate_features
from decisioning.records import ResponseRecord
from decisioning.summary import HistorySummary
from decisioning.types import DAY, Context, Outcome
from history import SqlHistory
from history.migrate import upgrade
from history.partitions import add_months, ensure_partitions, month_start
from history.retention import plan_retention, retain
from models.demo.customers import generate_customers
from models.prior import PriorScorer
from models.registry import ModelRegistry
from policies.loader import load_catalogue

from .conftest import pg_admin, pg_async_url, pg_run

DEMO = Path(__file__).resolve().parents[2] / "policies" / "demo"
NOW = month_start(1_796_000_000.0).timestamp() + 20 * DAY  # 2026-11-21
MONTHS = 14
CUSTOMERS = 150
CHANNELS = ("web", "mobile", "call_centre")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    name = f"nbo_retain_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    pg_run(pg_admin(f"CREATE DATABASE {name}"))
    try:
        yield pg_async_url(name)
    finally:
        pg_run(pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def request_at(catalogue: Catalogue, customer: tuple[str, dict], n: int, at: float) -> DecisionRequest:
    cid, values = customer
    snapshot = CustomerSnapshot(cid, values, {"*": at - DAY})
    features = validate_features(catalogue.features, cid, snapshot, at)
    return DecisionRequest(f"d-{cid}-{n}", features, Context(CHANNELS[n % 3], at, "home_hero"), 2)


async def make_history(history: SqlHistory, catalogue: Catalogue) -> list[tuple[str, dict]]:
    """Each customer is decided on once a month for MONTHS months, on its own day of the month."""
    customers = generate_customers(CUSTOMERS, catalogue.features, seed=11, now=NOW)
    first = add_months(month_start(NOW), -(MONTHS - 1))
    for m in range(MONTHS):
        for i, customer in enumerate(customers):
            at = add_months(first, m).timestamp() + (i % 25) * DAY + i
            if at >= NOW - DAY:
                continue
            # Generated history: decided without reading it back (the comparison below reads it).
            decision = decide(catalogue, request_at(catalogue, customer, m, at), HistorySummary(), PriorScorer())
            if not decision.offers:
                continue
            assert await history.record_decision(decision.to_record())
            outcome = Outcome.ACCEPTED if i % 4 == 0 else Outcome.DECLINED
            offer = decision.offers[0].offer.id
            answer = ResponseRecord(f"r-{decision.decision_id}", customer[0], offer, "web", outcome, at + 3600,
                                    decision.decision_id)  # fmt: skip
            assert await history.record_response(answer)
    return customers


async def decisions_now(history: SqlHistory, catalogue: Catalogue, customers: list) -> list[tuple]:
    """Today's decision for every customer: its offers and every dropped offer's reason."""
    made = []
    for customer in customers:
        summary = await history.summary(customer[0], since=NOW - 400 * DAY)
        d = decide(catalogue, request_at(catalogue, customer, 99, NOW), summary, PriorScorer())
        made.append((tuple(o.offer.id for o in d.offers), tuple(sorted(repr(x) for x in d.suppressions))))
    return made


async def train(url: str, catalogue: Catalogue, since: float, root: Path) -> tuple[list[dict], dict]:
    registry = ModelRegistry(root / "models")
    out = root / "rows.parquet"
    options = TrainOptions(url, catalogue, registry, "t", since=since, until=NOW, dataset_out=out, max_trees=50)
    outcome = await run_training(options)
    return pq.read_table(out).to_pylist(), registry.metadata("t", outcome.version).metrics["holdout"]


async def test_after_retain_policies_decide_and_train_learns_exactly_as_before(url: str, tmp_path: Path):
    catalogue = load_catalogue(DEMO)
    postgres = url.startswith("postgresql")
    if postgres:
        upgrade(url)
    history = SqlHistory(url)
    await history.start()
    try:
        if postgres:
            start = add_months(month_start(NOW), -(MONTHS - 1)).timestamp()
            await ensure_partitions(history.engine, ahead=MONTHS, now=start)
        customers = await make_history(history, catalogue)
        keep = next(m for m in range(1, MONTHS) if _allowed(catalogue, m))
        plan = plan_retention(catalogue, months=keep, now=NOW)
        since = plan.cutoff.timestamp()
        before = await decisions_now(history, catalogue, customers)
        rows_before, holdout_before = await train(url, catalogue, since, tmp_path / "before")

        report = await retain(history.engine, plan)
        assert report.dropped if postgres else sum(report.deleted_rows.values()) > 0

        assert await decisions_now(history, catalogue, customers) == before
        rows_after, holdout_after = await train(url, catalogue, since, tmp_path / "after")
        assert len(rows_before) > 200 and rows_after == rows_before
        assert holdout_after == holdout_before
        assert any(d[1] for d in before)  # the policies do drop offers today: the comparison is not empty
    finally:
        await history.close()


def _allowed(catalogue: Catalogue, months: int) -> bool:
    try:
        plan_retention(catalogue, months=months, now=NOW)
    except ValueError:
        return False
    return True
