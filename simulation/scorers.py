"""The simulator's comparison policies, as Scorers plugged into the same DecisionService.

The catalogue's rules, contact policies, budgets and arbitration (priority = score x value x lever) apply
to them exactly as to the learning model; only the score differs.

- `PushScorer`: fixed priorities, the product push ("sell the card to everyone"): the score is chosen so
  that the priority is the offer's place in `PUSH_ORDER`, whatever the customer.
- `OracleScorer`: the true probability, read from the hidden needs and the customer's fatigue.

>>> PushScorer([]).version
'push'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from decisioning.catalogue import Offer
from decisioning.rules import RuleEnv
from decisioning.types import Context, CustomerFeatures
from simulation.truth import ContactMemory, Truth

PUSH_ORDER = (
    "card_cashback", "card_travel", "loan_personal", "insurance_travel",
    "savings_boost", "insurance_home", "invest_plan", "mortgage_advice",
)  # fmt: skip


class PushScorer:
    """priority = score x value x lever = (len(PUSH_ORDER) - place) / len(PUSH_ORDER), for everyone."""

    version = "push"

    def __init__(self, offers: Sequence[Offer], order: Sequence[str] = PUSH_ORDER) -> None:
        rank = {offer_id: len(order) - i for i, offer_id in enumerate(order)}
        self.scores = {o.id: rank.get(o.id, 0) / len(order) / value_times_lever(o) for o in offers}

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        """A score whose priority is the offer's fixed place (the value and lever cancel out)."""
        return np.array([self.scores[o.id] for o in offers])

    def for_customer(self, customer_id: str) -> PushScorer:
        return self


class OracleScorer:
    """The true P(accept) at this moment: needs, channel, fatigue and holdings (simulation/truth.py)."""

    version = "oracle"

    def __init__(self, truth: Truth, rows: Mapping[str, int], memory: Callable[[str], ContactMemory]) -> None:
        self.truth, self.rows, self.memory = truth, rows, memory

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        cid = customer.customer_id
        ids = [o.id for o in offers]
        return self.truth.probabilities(self.rows[cid], ids, context.channel, self.memory(cid), context.now)

    def for_customer(self, customer_id: str) -> OracleScorer:
        return self


def constant_value(offer: Offer) -> float:
    """The offer's value when it is a constant (the simulator's catalogue has only constants)."""
    if offer.value.inputs:
        raise ValueError(f"offer {offer.id}: the simulator needs constant values, not {offer.value.text!r}")
    return float(offer.value.evaluate(RuleEnv({}, Context("", 0.0))))


def value_times_lever(offer: Offer) -> float:
    return max(constant_value(offer) * offer.lever, 1e-12)
