"""The hidden ground truth of the demo bank: how likely a customer is to accept an offer.

The simulator draws responses from it; the model never sees it and must rediscover it from the history.
On the log-odds scale: the offer's catalogue prior, a fixed per-offer offset, a term per offer group read
from the features *as they are at the moment of the contact*, the channel, the request's intent, and a
strong penalty for offering a product the customer already holds.

- cards: card spend, no card yet (an upgrade for those who have one), a recently declined card;
- loans: a declined card, a negative balance, a lower income;
- mortgages: age 28-45, income, recent mortgage calculator visits;
- savings: the current account balance, a salary that just arrived;
- investments: savings, an affluent or private segment;
- insurance: home ownership, children;
- retention: a recent churn signal (transfer to a competitor, large withdrawal), long tenure;
- service: a declined card, the app for digital customers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from decisioning.types import DAY, FeatureValue

if TYPE_CHECKING:
    from decisioning.catalogue import Offer

Features = Mapping[str, FeatureValue]
SALES_GROUPS = frozenset({"cards", "loans", "mortgages", "savings", "investments", "insurance"})
CHANNEL_EFFECT = {"web": 0.0, "mobile": 0.1, "call_centre": 0.6, "branch": 0.7, "email": -0.9, "sms": -1.1}
HOLDINGS = {
    "credit_card_gold": "has_gold_card",
    "credit_card_cashback": "has_credit_card",
    "credit_card_student": "has_credit_card",
    "mortgage": "has_mortgage",
    "loan_personal": "has_personal_loan",
    "overdraft": "has_overdraft",
    "etf_plan": "has_investment_account",
    "insurance_home": "has_home_insurance",
    "insurance_travel": "has_travel_insurance",
    "insurance_life": "has_life_insurance",
}


def _num(v: Features, name: str, default: float = 0.0) -> float:
    value = v.get(name)
    return default if value is None else float(value)


def _within(v: Features, name: str, now: float, days: float) -> bool:
    at = v.get(name)
    return at is not None and now - float(at) <= days * DAY


def _cards(v: Features, now: float) -> float:
    spend = 0.6 * math.log1p(_num(v, "card_spend_30d") / 500)
    holder = 0.6 if v.get("has_credit_card") else -0.8
    return spend + holder + 0.9 * _within(v, "card_declined_last_at", now, 14) - 1.0


def _loans(v: Features, now: float) -> float:
    short = 0.8 * _within(v, "card_declined_last_at", now, 30) + 0.6 * (_num(v, "balance_current") < 0)
    return short + 0.4 * (_num(v, "income_monthly", 2500) < 2000) - 0.3


def _mortgages(v: Features, now: float) -> float:
    age, income = _num(v, "age", 40), max(_num(v, "income_monthly", 2500), 100)
    visits = 0.7 * math.sqrt(min(_num(v, "mortgage_calc_visits_30d"), 9))
    recent = 1.2 * _within(v, "mortgage_calc_last_at", now, 30)
    return 1.1 * (28 <= age <= 45) + 0.7 * math.log(income / 3000) + visits + recent - 0.8


def _savings(v: Features, now: float) -> float:
    balance = 0.7 * math.log1p(max(_num(v, "balance_current"), 0.0) / 3000)
    return balance + 0.5 * _within(v, "salary_last_at", now, 5) - 0.5


def _investments(v: Features, now: float) -> float:
    rich = 0.8 * (v.get("segment") in ("affluent", "private"))
    return 0.6 * math.log1p(_num(v, "balance_savings") / 20_000) + rich + 0.2 * (_num(v, "age", 40) > 40) - 0.6


def _insurance(v: Features, now: float) -> float:
    return 0.7 * bool(v.get("homeowner")) + 0.5 * bool(v.get("has_children")) - 0.4


def _retention(v: Features, now: float) -> float:
    signal = 2.2 * _within(v, "churn_signal_at", now, 30) + 0.8 * _within(v, "churn_signal_at", now, 90)
    transfers = 0.3 * min(_num(v, "transfer_out_competitor_30d"), 4)
    withdrawals = 0.3 * min(_num(v, "large_withdrawals_7d"), 3)
    return signal + transfers + withdrawals + 0.4 * (_num(v, "tenure_months") > 60) - 1.2


def _service(v: Features, now: float) -> float:
    return 1.2 * _within(v, "card_declined_last_at", now, 7) + 0.4 * bool(v.get("digital_active")) - 0.2


GROUP_TERMS: dict[str, Callable[[Features, float], float]] = {
    "cards": _cards,
    "loans": _loans,
    "mortgages": _mortgages,
    "savings": _savings,
    "investments": _investments,
    "insurance": _insurance,
    "retention": _retention,
    "service": _service,
}
INTENT_EFFECT = {
    "complaint": {"retention": 0.5, "service": 0.8, "*": -1.5},
    "wants_to_close": {"retention": 1.5, "*": -1.0},
    "card_declined": {"service": 2.0, "cards": 0.7, "loans": 0.5},
}


class GroundTruth:
    """P(accept) for a customer's features, an offer, a channel and an intent at a moment.

    >>> truth = GroundTruth(seed=0)                                          # doctest: +SKIP
    >>> truth.probability(features, offer, "web", None, now)                 # doctest: +SKIP
    0.043
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._offsets: dict[str, float] = {}

    def offset(self, offer_id: str) -> float:
        """A fixed per-offer shift in [-0.5, 0.5], derived from the seed and the offer id."""
        if offer_id not in self._offsets:
            digest = hashlib.blake2b(f"{self.seed}:{offer_id}".encode(), digest_size=8).digest()
            self._offsets[offer_id] = int.from_bytes(digest, "big") / 2.0**64 - 0.5
        return self._offsets[offer_id]

    def logit(self, v: Features, offer: Offer, channel: str, intent: str | None, now: float) -> float:
        base = math.log(offer.prior / (1 - offer.prior)) + self.offset(offer.id)
        term = GROUP_TERMS.get(offer.group, lambda _v, _now: 0.0)(v, now)
        effects = INTENT_EFFECT.get(intent or "", {})
        context = effects.get(offer.group, effects.get("*", 0.0) if offer.group in SALES_GROUPS else 0.0)
        return base + term + CHANNEL_EFFECT.get(channel, 0.0) + context + self._holding(v, offer)

    def probability(self, v: Features, offer: Offer, channel: str, intent: str | None, now: float) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(v, offer, channel, intent, now)))

    @staticmethod
    def _holding(v: Features, offer: Offer) -> float:
        feature = HOLDINGS.get(offer.product, f"has_{offer.product}")
        return -3.0 if v.get(feature) else 0.0
