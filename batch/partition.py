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

import numpy as np
import pyarrow as pa

from batch import bulk
from batch.job import PrescoreJob, loaded
from batch.prefilter import Prefiltered, prefilter, rule_columns
from batch.rows import RowsBuilder
from batch.scoring import prescored_row, score_matrix
from batch.stats import RunStats
from decisioning.catalogue import Catalogue
from decisioning.engine import Decision, DecisionRequest, decide
from decisioning.plan import plan_for
from decisioning.ports import Scorer
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
    stats = RunStats()
    decisions = decider_for(job, partition, stats)
    rows = RowsBuilder(job)
    pre = decisions.pre
    for i in range(len(decisions.customers)):
        decision = decisions.decide(i)
        reason = None if decision.offers else no_offer_reason(decision, pre.bits[i], pre)
        rows.add(decision, reason)
        stats.count(decision, reason)
    return PartitionResult(partition.index, rows.table(), stats)


def decider_for(job: PrescoreJob, partition: Partition, stats: RunStats) -> Decider:
    """The partition's customers validated, prefiltered and scored, ready to be decided one by one."""
    catalogue, scorer = loaded(job).catalogue, loaded(job).scorer
    context = Context(job.channel, job.as_of)
    customers = _customers(catalogue, partition, job.as_of, stats)
    summaries = [HistorySummary.from_json(partition.summaries.get(c.customer_id)) for c in customers]
    empty = _view(catalogue, HistorySummary(), job.as_of)
    views = [_view(catalogue, s, job.as_of) if s.events else empty for s in summaries]
    pre = prefilter(catalogue, context, [c.values for c in customers], views)
    stats.eligible_pairs, stats.rule_suppressions = pre.eligible_pairs, pre.rule_drops
    # Champion or challenger per customer, as online; every rule survivor scored in one model call.
    scores, scorers = score_matrix(scorer, customers, context, pre.alive, plan_for(catalogue).offers)
    return Decider(job, catalogue, context, customers, summaries, views, empty, pre, scores, scorers)


class Decider:
    """Decides each customer of a partition: from the bulk arrays (`batch.bulk`), or with the core's
    `decide` for the customers the arrays do not cover (`Bulk.needs_core`)."""

    def __init__(
        self, job: PrescoreJob, catalogue: Catalogue, context: Context, customers: list[CustomerFeatures],
        summaries: list[HistorySummary], views: list[HistoryView], empty: HistoryView, pre: Prefiltered,
        scores: np.ndarray, scorers: list[Scorer],
    ) -> None:  # fmt: skip
        self.job, self.catalogue, self.context = job, catalogue, context
        self.customers, self.summaries, self.views = customers, summaries, views
        self.pre, self.scores, self.scorers = pre, scores, scorers
        n = len(customers)
        self.mode = bulk.fast_mode(catalogue)
        state = bulk.Bulk(pre.alive.copy(), scores, np.full(n, self.mode is None), [()] * n)
        self.state = state
        if self.mode is None or n == 0:
            return
        plan = plan_for(catalogue)
        rules = [o.value for o in plan.offers] + [p.segment for p in catalogue.policies if p.segment is not None]
        columns = rule_columns(rules, context, [c.values for c in customers], views, known=pre.columns)
        bulk.apply_policies(catalogue, context, customers, views, empty, columns, state, job.top)
        value = bulk.values(catalogue, columns, context, customers, views, state.alive)
        boost = bulk.boosts(catalogue, views, empty, context.now)
        priority = bulk.priorities(state, value, catalogue, context, boost)
        state.needs_core |= np.any(np.isnan(priority) & state.alive, axis=1)
        weight = bulk.context_weights(catalogue, context).tolist()
        self.arrays = bulk.Arrays(state.alive, scores, value, boost, priority, weight, [o.id for o in plan.offers])
        self.order = bulk.ranking(state.alive, priority, bulk.offer_order(catalogue))
        self.counts = state.alive.sum(axis=1)
        self.chooser = bulk.chooser_for(catalogue, self.mode)

    def decide(self, i: int) -> Decision:
        """Customer i's decision: from the arrays when they cover it, else by the core's `decide`."""
        return self.bulk(i) if self.in_bulk(i) else self.core(i)

    def in_bulk(self, i: int) -> bool:
        return not self.state.needs_core[i]

    def bulk(self, i: int) -> Decision:
        customer_id = self.customers[i].customer_id
        decision_id = self.job.decision_id(customer_id)
        count = int(self.counts[i])
        picks = self.chooser.choose(self.order[i, :count].tolist(), self.job.top, decision_id)
        model = self.scorers[i].version
        return bulk.decision(
            self.catalogue, decision_id, customer_id, self.context, self.mode or "greedy", model, picks,
            self.arrays, i, self.state.suppressions[i],
        )  # fmt: skip

    def core(self, i: int) -> Decision:
        customer, summary = self.customers[i], self.summaries[i]
        request = DecisionRequest(self.job.decision_id(customer.customer_id), customer, self.context, self.job.top)
        scoring = prescored_row(self.scorers[i], self.scores[i], self.pre.alive[i], plan_for(self.catalogue).offers)
        return decide(self.catalogue, request, summary, scoring, prefiltered=self.pre.bits[i], view=self.views[i])


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
    defaults = {c.name: c.default for c in compiled}
    reported = frozenset(c.name for c in compiled if c.report_missing)
    # Every row has the same keys, in the schema's order (validate_columns): the features the file lacks
    # and does not have to hold (event features) take their default too.
    absent = [name for name in defaults if rows and name not in rows[0][1]]
    out = []
    for cid, values in rows:
        nones = [name for name, v in values.items() if v is None]
        for name in nones:
            values[name] = defaults[name]
        for name in absent:
            values[name] = defaults[name]
        out.append(CustomerFeatures(cid, values, True, tuple(name for name in nones if name in reported)))
    return out


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
