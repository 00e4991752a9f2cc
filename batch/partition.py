"""The partition function: one slice of customers in, their prescored rows and counts out.

The same function runs in a local process, on a Dask worker, or inside Spark's `mapInPandas` (see
docs/batch.md): it reads nothing but its arguments and the job's catalogue and model.

Per partition, the work the online path does one customer at a time is split in two:
1. vectorised, for every customer at once: feature validation of the file's columns (as `nbo features
   load` does), the active-date and channel filters and every rule (`batch.prefilter`);
2. per customer, the core's own steps on the survivors: `decisioning.engine.decide(..., prefiltered=)`
   runs the same contact policies, scoring, arbitration (exploration and control group included) as
   POST /v1/decisions. There is no second arbitration to keep in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from batch.job import PrescoreJob, loaded
from batch.prefilter import Prefiltered, prefilter
from batch.rows import RowsBuilder
from batch.scoring import prescored
from batch.stats import RunStats
from decisioning.catalogue import Catalogue
from decisioning.engine import Decision, DecisionRequest, decide
from decisioning.plan import indices, plan_for
from decisioning.quality import LoadReport, compile_schema, validate_columns
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import Context, CustomerFeatures
from features.files import ID_COLUMN, batch_columns


@dataclass(frozen=True)
class Partition:
    """A slice of the customers: their feature rows and the history summaries of those that have one."""

    index: int
    features: pa.RecordBatch
    summaries: Mapping[str, bytes]  # customer id -> HistorySummary.to_json()


@dataclass(frozen=True)
class PartitionResult:
    index: int
    table: pa.Table
    stats: RunStats


def prescore_partition(job: PrescoreJob, partition: Partition) -> PartitionResult:
    """Decide the top `job.top` offers for every customer of the partition, at `job.as_of`.

    >>> result = prescore_partition(job, Partition(0, record_batch, {}))  # doctest: +SKIP
    >>> result.table.column_names[:5]                                    # doctest: +SKIP
    ['run_id', 'as_of', 'channel', 'customer_id', 'rank']
    """
    catalogue, scorer = loaded(job).catalogue, loaded(job).scorer
    context = Context(job.channel, job.as_of)
    stats = RunStats()
    customers = _customers(catalogue, partition, job.as_of, stats)
    summaries = [HistorySummary.from_json(partition.summaries.get(c.customer_id)) for c in customers]
    views = _views(catalogue, summaries, job.as_of)
    pre = prefilter(catalogue, context, [c.values for c in customers], views)
    stats.eligible_pairs, stats.rule_suppressions = pre.eligible_pairs, pre.rule_drops
    plan = plan_for(catalogue)
    # Champion or challenger per customer, as online; every rule survivor scored in one model call.
    scorers = prescored(scorer, customers, context, [[plan.offers[i] for i in indices(b)] for b in pre.bits])
    rows = RowsBuilder(job)
    for customer, summary, view, bits, scoring in zip(customers, summaries, views, pre.bits, scorers, strict=True):
        request = DecisionRequest(job.decision_id(customer.customer_id), customer, context, job.top)
        decision = decide(catalogue, request, summary, scoring, prefiltered=bits, view=view)
        reason = None if decision.offers else no_offer_reason(decision, bits, pre)
        rows.add(decision, reason)
        stats.count(decision, reason)
    return PartitionResult(partition.index, rows.table(), stats)


def _customers(catalogue: Catalogue, partition: Partition, now: float, stats: RunStats) -> list[CustomerFeatures]:
    """The partition's validated features: the file cleaned as `nbo features load` cleans it, then read
    as a decision reads the cache (defaults for what is missing or invalid)."""
    report = LoadReport()
    rows = validate_columns(catalogue.features, batch_columns(partition.features), report, ID_COLUMN)
    stats.rejected_features.update(report.rejected)
    # What `validate_features` makes of a cached row that `validate_columns` cleaned: values are already
    # valid (coercion is idempotent), a missing one takes its default and is reported when the schema
    # expects it in a batch file. Done here without re-coercing each value: a third of a partition's time.
    # Loaded at `now`: nothing is stale. tests/batch/test_partition.py checks it against validate_features.
    compiled = compile_schema(catalogue.features).compiled
    out = []
    for cid, values in rows:
        clean = {c.name: c.default if (v := values.get(c.name)) is None else v for c in compiled}
        defaulted = tuple(c.name for c in compiled if c.report_missing and values.get(c.name) is None)
        out.append(CustomerFeatures(cid, clean, True, defaulted))
    return out


def _views(catalogue: Catalogue, summaries: list[HistorySummary], now: float) -> list[HistoryView]:
    """Each customer's history view at `now`; every empty history shares one view, whose memo then
    answers the contact policies' questions once for all of them."""
    empty = _view(catalogue, HistorySummary(), now)
    return [_view(catalogue, s, now) if s.events else empty for s in summaries]


def _view(catalogue: Catalogue, summary: HistorySummary, now: float) -> HistoryView:
    return HistoryView(summary, now, catalogue.response_window_seconds, catalogue.confirmation_seconds)


def no_offer_reason(decision: Decision, bits: int, pre: Prefiltered) -> str:
    """Why a customer gets no offer, in words (the first filter that left nothing)."""
    if decision.mode == "control_none":
        return "control group: no marketing offer"
    if pre.static_bits == 0:
        return f"no active offer has a treatment for channel '{decision.context.channel}'"
    if bits == 0:
        return "no offer passes the eligibility, applicability and suitability rules"
    if not decision.scored:
        policies = sorted({s.policy_id for s in decision.suppressions})
        return f"every eligible offer is suppressed by contact policies: {', '.join(policies)}"
    return "no candidate fits the decision's constraints (contact-policy headroom)"
