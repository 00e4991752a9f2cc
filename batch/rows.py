"""The prescored list: one row per customer and rank, or one rank-0 row with the reason for no offer."""

from __future__ import annotations

import pyarrow as pa

from batch.job import PrescoreJob
from decisioning.engine import Decision

OUTPUT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("as_of", pa.float64()),  # epoch seconds
        ("channel", pa.string()),
        ("customer_id", pa.string()),
        ("rank", pa.int16()),  # 1..N; 0 for a customer with no offer (offer_id null, see reason)
        ("offer_id", pa.string()),
        ("offer_group", pa.string()),
        ("treatment", pa.string()),  # the channel treatment's title
        ("propensity", pa.float64()),
        ("value", pa.float64()),
        ("priority", pa.float64()),
        ("selection_probability", pa.float64()),
        ("control_group", pa.bool_()),
        ("mode", pa.string()),  # greedy, epsilon_greedy, thompson, control, control_none
        ("model_version", pa.string()),
        ("catalogue_version", pa.string()),
        ("reason", pa.string()),  # why there is no offer (rank 0 only)
    ]
)
_OFFER_FIELDS = ("offer_id", "offer_group", "treatment", "propensity", "value", "priority", "selection_probability")


class RowsBuilder:
    """Accumulates the output rows of a partition, column by column."""

    def __init__(self, job: PrescoreJob) -> None:
        self.job = job
        self.columns: dict[str, list] = {name: [] for name in OUTPUT_SCHEMA.names}

    def add(self, decision: Decision, reason: str | None) -> None:
        """The decision's offers in rank order, or its one rank-0 row when it has none."""
        if not decision.offers:
            self._row(decision, 0, dict.fromkeys(_OFFER_FIELDS), reason)
        for p in decision.offers:
            offer = {
                "offer_id": p.offer.id, "offer_group": p.offer.group, "treatment": p.treatment.title,
                "propensity": p.propensity, "value": p.value, "priority": p.priority,
                "selection_probability": p.selection_probability,
            }  # fmt: skip
            self._row(decision, p.rank, offer, None)

    def _row(self, decision: Decision, rank: int, offer: dict, reason: str | None) -> None:
        c, job = self.columns, self.job
        c["run_id"].append(job.run_id)
        c["as_of"].append(job.as_of)
        c["channel"].append(job.channel)
        c["customer_id"].append(decision.customer_id)
        c["rank"].append(rank)
        for name, value in offer.items():
            c[name].append(value)
        c["control_group"].append(decision.control_group)
        c["mode"].append(decision.mode)
        c["model_version"].append(decision.model_version)
        c["catalogue_version"].append(decision.catalogue_version)
        c["reason"].append(reason)

    def table(self) -> pa.Table:
        return pa.table(self.columns, schema=OUTPUT_SCHEMA)
