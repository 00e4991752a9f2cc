"""Parity: the batch's top N for a customer equals what POST /v1/decisions answers for the same customer,
channel and moment, through the app (create_app, ASGI transport) on its embedded stores.

The history is seeded through the service first (sends, responses, earlier decisions), so contact
policies and the rules' history functions have something to count; the batch reads the same history with
SqlHistory.summaries. Exploration and the control group are off in the test catalogue copies (with them
on, tests/batch/test_partition.py shows the same equality on the core). Budgets: the batch reserves none;
the sample is far below every budget, so online reservations drop nothing either (docs/batch.md).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.prescoring import history_summaries
from app.settings import Settings
from batch.engines import InProcessEngine
from batch.job import PrescoreJob
from batch.run import prescore
from decisioning.types import DAY, Outcome
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainingConfig, train_and_register
from policies.loader import load_catalogue
from service.commands import Decide, ReportSend, Respond
from tests.api.conftest import factory_for
from tests.batch.conftest import AS_OF, DEMO, STACK, deterministic_copy, write_customers

CUSTOMERS = 120


async def _seed(app: FastAPI, catalogue, ids: list[str]) -> None:
    """Give a third of the customers a history: a send, a decline, a web decision a day ago."""
    service = app.state.service
    offers = [o for o in catalogue.offers if "email" in o.treatments]
    clock = service.decisions.clock
    service.decisions.clock = lambda: AS_OF - DAY
    for k, cid in enumerate(ids[: CUSTOMERS // 3]):
        o = offers[k % len(offers)]
        await service.record_contacts([ReportSend(f"seed-{k}", cid, o.id, "email", at=AS_OF - 3 * DAY)])
        if k % 2:
            await service.respond(Respond(cid, o.id, "email", Outcome.DECLINED, at=AS_OF - 2 * DAY))
        await service.decide(Decide(cid, "web", max_offers=2))
    service.decisions.clock = clock


def _train(model_dir: Path, catalogue) -> None:
    data = synthetic_training_set(catalogue.features, catalogue.offers, rows=6000, seed=1)
    train_and_register(ModelRegistry(model_dir), data, "nbo", TrainingConfig(num_trees=15, min_data_in_leaf=20))


CASES = [(DEMO, "email", True), (DEMO, "web", False), (STACK, "email", False)]


@pytest.mark.parametrize("source, channel, model", CASES, ids=["demo-email-lightgbm", "demo-web-priors", "stack-email"])
async def test_batch_top_n_equals_post_decisions(tmp_path: Path, source: Path, channel: str, model: bool):
    catalogue_dir = deterministic_copy(source, tmp_path / "catalogue")
    catalogue = load_catalogue(catalogue_dir)
    features = tmp_path / "customers.parquet"
    ids = write_customers(catalogue, features, CUSTOMERS)
    if model:
        _train(tmp_path / "models", catalogue)
    settings = Settings(
        environment="test", database_url=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}", catalogue_dir=catalogue_dir,
        features_file=features, model_dir=tmp_path / "models", batch_dir=tmp_path / "batch",
    )  # fmt: skip
    app = create_app(settings, service_factory=factory_for(None))
    async with app.router.lifespan_context(app):
        await _seed(app, catalogue, ids)
        # The batch first (the online answers below are recorded and would count in a later run).
        job = PrescoreJob("r-parity", catalogue_dir, settings.model_dir, "nbo", channel, 3, AS_OF)
        summaries = await history_summaries(settings.database_url, AS_OF)
        assert len(summaries) >= CUSTOMERS // 3
        out = tmp_path / "list.parquet"
        result = prescore(job, features, out, run_dir=tmp_path / "batch" / job.run_id, engine=InProcessEngine(1),
                 summaries=summaries, progress=False)  # fmt: skip
        batch = _by_customer(pq.read_table(out).to_pylist())
        app.state.service.decisions.clock = lambda: AS_OF
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://nbo.test") as client:
            differences = {}
            for cid in ids[::2]:  # the seeded ones and as many without a history
                body = {"customer_id": cid, "channel": channel, "max_offers": 3}
                answer = await client.post("/v1/decisions", json=body)
                assert answer.status_code == 200, answer.text
                online = [_offer(o) for o in answer.json()["offers"]]
                if online != batch[cid]:
                    differences[cid] = (online, batch[cid])
    assert differences == {}
    assert any(len(v) > 1 for v in batch.values())  # top N, not just top 1
    assert any(summaries.get(c) for c in ids[::2])
    if source == DEMO:  # the seeded declines and sends are counted by the policies and the rules
        assert result.stats.policy_suppressions


def _offer(o: dict) -> tuple:
    return (o["offer_id"], o["rank"], round(o["propensity"], 12), round(o["value"], 9), round(o["priority"], 9),
            o["selection_probability"], o["treatment"]["title"])  # fmt: skip


def _by_customer(rows: list[dict]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for r in rows:
        got = out.setdefault(r["customer_id"], [])
        if r["offer_id"] is not None:
            got.append((r["offer_id"], r["rank"], round(r["propensity"], 12), round(r["value"], 9),
                        round(r["priority"], 9), r["selection_probability"], r["treatment"]))  # fmt: skip
    return out
