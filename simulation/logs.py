"""The simulator's decision log in the plain log-file format of offline evaluation (issue 16).

One row per presented offer: `decision_id`, `position` (its rank), `reward` (the offer's value when
accepted, else 0), `accepted` (0/1), `logging_probability` (the selection probability the arbitration
logged), and per target policy `target_probability_<name>`: the probability that policy gives the same
offer at that position, given the same candidates (the offers that passed the rules, the contact
policies and the budgets, as the decision scored them) and the customer's state at that moment.
Deterministic targets (push, oracle) give 1 to their choice and 0 to the rest (`target_offer_<name>` names
that choice, for a reward model's expectation); random gives 1/candidates.
`first_contact` marks each customer's first decision of the run (see simulation/ope.py for why);
`true_probability` and `expected_reward` are the truth's (what the simulator knows and no estimator reads).

>>> log = DecisionLog(TargetPolicies((), None, None, {}, []))
>>> log.table().column_names[:3]
['decision_id', 'customer', 'day']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from decisioning.types import DAY, CustomerFeatures
from simulation.schedule import START
from simulation.scorers import OracleScorer, PushScorer, value_times_lever
from simulation.truth import ContactMemory, Truth

if TYPE_CHECKING:
    from decisioning.catalogue import Catalogue
    from decisioning.engine import Decision, PresentedOffer

TARGETS = ("push", "oracle", "random")
COLUMNS = ("decision_id", "customer", "day", "channel", "position", "offer_id", "reward", "accepted",
           "logging_probability", "first_contact", "true_probability", "expected_reward")  # fmt: skip


class TargetPolicies:
    """The probability each target policy gives an offer, among a decision's candidates."""

    def __init__(
        self, names: Sequence[str], catalogue: Catalogue | None, truth: Truth | None, rows: Mapping[str, int],
        memory: Sequence[ContactMemory],
    ) -> None:  # fmt: skip
        unknown = set(names) - set(TARGETS)
        if unknown:
            raise ValueError(f"unknown target policies {sorted(unknown)}; known: {', '.join(TARGETS)}")
        self.names = tuple(names)
        self.catalogue = catalogue
        self.push = PushScorer(catalogue.offers) if catalogue is not None and "push" in names else None
        self.oracle = OracleScorer(truth, rows, lambda cid: memory[rows[cid]]) if truth is not None else None

    def choices(self, decision: Decision, offer_id: str) -> dict[str, tuple[float, str | None]]:
        """Per target: (its probability of `offer_id`, the offer it would choose; None when it chooses at
        random)."""
        if not self.names:
            return {}
        assert self.catalogue is not None
        offers = [self.catalogue.offers_by_id[i] for i, _, _ in decision.scored]
        customer = CustomerFeatures(decision.customer_id, {})
        out = {}
        for name in self.names:
            if name == "random":
                out[name] = (1.0 / len(offers), None)
                continue
            scorer = self.push if name == "push" else self.oracle
            scores = np.asarray(scorer.score(customer, decision.context, offers))  # type: ignore[union-attr]
            priority = scores * np.array([value_times_lever(o) for o in offers])
            best = min(range(len(offers)), key=lambda i: (-priority[i], offers[i].id))  # the greedy tie-break
            out[name] = (float(offers[best].id == offer_id), offers[best].id)
        return out


class DecisionLog:
    """Rows of the log as they are decided (see the module doc)."""

    def __init__(self, targets: TargetPolicies, *, enabled: bool = True) -> None:
        self.targets, self.enabled = targets, enabled
        self.columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        for t in targets.names:
            self.columns[f"target_probability_{t}"] = []
            self.columns[f"target_offer_{t}"] = []
        self._seen: set[int] = set()

    def add(
        self, decision: Decision, presented: PresentedOffer, row: int, value: float, accepted: bool, p: float
    ) -> None:
        """One presented offer: its value, whether it was accepted, and its true probability `p`."""
        if not self.enabled:
            return
        c, ctx = self.columns, decision.context
        values = (decision.decision_id, row, int((ctx.now - START) // DAY), ctx.channel, presented.rank,
                  presented.offer.id, value * accepted, int(accepted), presented.selection_probability,
                  row not in self._seen, p, p * value)  # fmt: skip
        for name, value in zip(COLUMNS, values, strict=True):
            c[name].append(value)
        for name, (p, choice) in self.targets.choices(decision, presented.offer.id).items():
            c[f"target_probability_{name}"].append(p)
            c[f"target_offer_{name}"].append(choice)
        self._seen.add(row)

    def table(self) -> pa.Table:
        return pa.table(self.columns)

    def write(self, path: Path) -> None:
        """CSV or Parquet, by the file's suffix."""
        if path.suffix == ".parquet":
            pq.write_table(self.table(), path)
        else:
            pa_csv.write_csv(self.table(), path)
