"""The partition function and its prefilter against the core's online path, customer by customer."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from batch.job import PrescoreJob
from batch.partition import Partition, _customers, prescore_partition
from batch.prefilter import prefilter
from batch.stats import RunStats
from decisioning.engine import DecisionRequest, _Run, decide
from decisioning.ports import CustomerSnapshot
from decisioning.quality import LoadReport, validate_columns, validate_features
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, ContactEvent, Context, CustomerFeatures, Outcome
from features.files import batch_columns
from models.prior import PriorScorer
from policies.loader import load_catalogue
from tests.api.conftest import ADULT
from tests.batch.conftest import AS_OF, DEMO, write_customers


def _histories(catalogue, ids: list[str]) -> dict[str, HistorySummary]:
    """Every third customer declined, was sent or was shown something recently."""
    offers = catalogue.offers
    out = {}
    for k, cid in enumerate(ids[::3]):
        o = offers[k % len(offers)]
        events = [
            ContactEvent(AS_OF - 5 * DAY, o.id, o.group, "web", Outcome.PRESENTED, f"d-{k}"),
            ContactEvent(AS_OF - 4 * DAY, o.id, o.group, "web", Outcome.DECLINED, f"d-{k}"),
            ContactEvent(AS_OF - 1 * DAY, offers[(k + 1) % len(offers)].id, offers[(k + 1) % len(offers)].group,
                         "email", Outcome.SENT, f"s-{k}"),
        ]  # fmt: skip
        out[cid] = HistorySummary().with_events(events)
    return out


@pytest.mark.parametrize("channel", ["email", "web", "call_centre"])
def test_the_prefilter_and_the_batch_decision_equal_the_online_decision(tmp_path: Path, channel: str):
    # The demo catalogue as shipped: exploration and the control group on (both seeded the same way).
    catalogue = load_catalogue(DEMO)
    path = tmp_path / "customers.parquet"
    ids = write_customers(catalogue, path, 400)
    histories = _histories(catalogue, ids)
    job = PrescoreJob("r-t", DEMO, tmp_path / "none", "nbo", channel, 3, AS_OF)
    result = prescore_partition(job, Partition(0, pq.read_table(path).combine_chunks().to_batches()[0],
                                               {c: s.to_json() for c, s in histories.items()}))  # fmt: skip
    got = _by_customer(result.table.to_pylist())
    rows, _ = validate_columns(catalogue.features, batch_columns(pq.read_table(path).combine_chunks().to_batches()[0]),
                               LoadReport()), None  # fmt: skip
    context = Context(channel, AS_OF)
    for cid, values in rows:
        customer = validate_features(catalogue.features, cid, CustomerSnapshot(cid, values, {"*": AS_OF}), AS_OF)
        online = decide(catalogue, DecisionRequest(job.decision_id(cid), customer, context, 3),
                        histories.get(cid, HistorySummary()), PriorScorer())  # fmt: skip
        expected = [(p.offer.id, p.rank, p.propensity, p.value, p.priority, p.selection_probability)
                    for p in online.offers] or [(None, 0, None, None, None, None)]  # fmt: skip
        assert got[cid] == expected, cid
    assert result.stats.customers == 400


def _by_customer(rows: list[dict]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = {}
    for r in rows:
        out.setdefault(r["customer_id"], []).append(
            (r["offer_id"], r["rank"], r["propensity"], r["value"], r["priority"], r["selection_probability"])
        )
    return out


def test_batch_features_equal_validate_features(tmp_path: Path):
    catalogue = load_catalogue(DEMO)
    path = tmp_path / "customers.parquet"
    write_customers(catalogue, path, 200)
    table = pq.read_table(path)
    # Holes and bad values: defaults and reports must match the online validator's.
    table = table.set_column(table.schema.get_field_index("age"), "age",
                             [[None if i % 7 == 0 else (500 if i % 11 == 0 else a) for i, a in
                               enumerate(table.column("age").to_pylist())]])  # fmt: skip
    part = Partition(0, table.combine_chunks().to_batches()[0], {})
    fast = _customers(catalogue, part, AS_OF, RunStats())
    rows = validate_columns(catalogue.features, batch_columns(part.features), LoadReport())
    slow = [validate_features(catalogue.features, c, CustomerSnapshot(c, v, {"*": AS_OF}), AS_OF) for c, v in rows]
    assert fast == slow
    assert any(c.defaulted for c in fast)


def test_a_rule_the_vector_form_cannot_read_falls_back_to_the_online_form():
    catalogue = load_catalogue(DEMO)
    # Text where a number belongs makes the whole column unreadable; online, only that customer's rules fail.
    values = [ADULT, {**ADULT, "age": "thirty"}]
    empty = HistoryView(HistorySummary(), AS_OF)
    context = Context("web", AS_OF)
    pre = prefilter(catalogue, context, values, [empty, empty])
    online = []
    for v in values:
        run = _Run(catalogue, DecisionRequest("d", CustomerFeatures("c", v), context), HistorySummary(), None)
        online.append(run.filter_rules(run.filter_static()))
    assert pre.bits == online
    assert pre.bits[0] != 0 and pre.bits[1] != pre.bits[0]
