"""The hidden ground truth of the simulated bank: P(accept | customer's needs, offer, channel, fatigue).

On the log-odds scale, per offer: a base, plus loadings on the customer's needs (the loan answers
`borrow`, the investment plan `wealth`, the mortgage `family` and `wealth`...), plus the channel (people
say yes more to an agent than to an e-mail; digital customers answer more online), minus fatigue:

    logit = base[offer] + loadings[offer] . needs + channel effect - 0.15 x contacts(7 days)
            - 0.25 x contacts of this offer(14 days)

`contacts` are the customer's earlier marketing contacts (presented or sent, any offer, any policy). The
model never sees the needs, only the features they drive (simulation/bank.py), so it can learn most of
this structure from its logs; the oracle policy reads it directly. A customer who accepted an offer holds
the product: the offer's probability is 0 from then on.

>>> truth = Truth(np.zeros((1, 5)))
>>> round(truth.probability(0, "savings_boost", "web", ContactMemory()), 4)
0.0392
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from decisioning.types import DAY
from simulation.bank import NEEDS

# base log-odds and loadings on (borrow, wealth, family, travel, digital)
OFFERS: dict[str, tuple[float, tuple[float, ...]]] = {
    "card_cashback": (-3.4, (0.6, -0.3, 0.0, 0.7, 0.0)),
    "card_travel": (-4.6, (0.0, 0.5, 0.0, 1.6, 0.0)),
    "loan_personal": (-5.4, (1.7, -0.2, 0.3, 0.0, 0.0)),
    "mortgage_advice": (-6.6, (-0.3, 0.6, 1.6, 0.0, 0.0)),
    "savings_boost": (-3.2, (-0.8, 0.9, 0.0, 0.0, 0.0)),
    "invest_plan": (-5.6, (0.0, 1.7, 0.0, 0.0, 0.0)),
    "insurance_home": (-3.8, (0.0, 0.2, 1.0, 0.0, 0.0)),
    "insurance_travel": (-4.0, (0.0, 0.0, 0.0, 1.3, 0.0)),
}
CHANNEL_BASE = {"web": 0.0, "mobile": 0.1, "call_centre": 0.8, "email": -0.7}
CHANNEL_DIGITAL = {"web": 0.4, "mobile": 0.5, "call_centre": -0.3, "email": 0.3}  # x the `digital` need
FATIGUE_ALL, FATIGUE_OFFER = 0.15, 0.25
ALL_WINDOW, OFFER_WINDOW = 7 * DAY, 14 * DAY


@dataclass
class ContactMemory:
    """One customer's recent marketing contacts (time, offer), and the offers they took."""

    contacts: deque[tuple[float, str]] = field(default_factory=deque)
    holds: set[str] = field(default_factory=set)

    def add(self, at: float, offer_id: str) -> None:
        self.contacts.append((at, offer_id))

    def counts(self, now: float, offer_ids: Sequence[str]) -> tuple[int, list[int]]:
        """(contacts in the last 7 days, contacts of each offer in the last 14 days), before `now`."""
        while self.contacts and self.contacts[0][0] < now - OFFER_WINDOW:
            self.contacts.popleft()
        recent = sum(1 for at, _ in self.contacts if now - ALL_WINDOW <= at < now)
        return recent, [sum(1 for at, o in self.contacts if o == offer and at < now) for offer in offer_ids]


class Truth:
    """True acceptance probabilities for the customers of one bank (rows of `needs`)."""

    def __init__(self, needs: np.ndarray) -> None:
        if needs.shape[1] != len(NEEDS):
            raise ValueError(f"needs must have {len(NEEDS)} columns")
        self.offer_ids = tuple(OFFERS)
        base = np.array([OFFERS[o][0] for o in self.offer_ids])
        loadings = np.array([OFFERS[o][1] for o in self.offer_ids])
        self._static = needs @ loadings.T + base  # (customers, offers): the fatigue-free log-odds
        self._digital = needs[:, NEEDS.index("digital")]
        self._column = {o: j for j, o in enumerate(self.offer_ids)}

    def probabilities(
        self, customer: int, offer_ids: Sequence[str], channel: str, memory: ContactMemory, now: float | None = None
    ) -> np.ndarray:
        """P(accept) of each offer for this customer in this channel, given the contacts before `now`."""
        at = math.inf if now is None else now
        recent, per_offer = memory.counts(at, offer_ids)
        channel_term = CHANNEL_BASE[channel] + CHANNEL_DIGITAL[channel] * self._digital[customer]
        logits = np.array([self._static[customer, self._column[o]] for o in offer_ids]) + channel_term
        logits -= FATIGUE_ALL * recent + FATIGUE_OFFER * np.array(per_offer, dtype=float)
        p = 1.0 / (1.0 + np.exp(-logits))
        held = np.array([o in memory.holds for o in offer_ids], dtype=bool)
        return np.where(held, 0.0, p)

    def probability(
        self, customer: int, offer_id: str, channel: str, memory: ContactMemory, now: float | None = None
    ) -> float:
        return float(self.probabilities(customer, [offer_id], channel, memory, now)[0])
