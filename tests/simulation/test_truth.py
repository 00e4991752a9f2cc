"""The simulated bank's hidden truth and customers: fatigue, holdings, the features the catalogue reads."""

from __future__ import annotations

import numpy as np

from decisioning.types import DAY
from policies.loader import load_catalogue
from simulation.bank import NEEDS, generate_bank
from simulation.truth import ContactMemory, Truth
from simulation.wiring import CATALOGUE_DIR


def test_fatigue_lowers_the_response_after_repeated_contacts() -> None:
    truth, memory = Truth(np.zeros((1, len(NEEDS)))), ContactMemory()
    fresh = truth.probability(0, "savings_boost", "web", memory, now=10 * DAY)
    memory.add(9 * DAY, "card_cashback")
    after_other = truth.probability(0, "savings_boost", "web", memory, now=10 * DAY)
    memory.add(9.5 * DAY, "savings_boost")
    after_same = truth.probability(0, "savings_boost", "web", memory, now=10 * DAY)
    assert fresh > after_other > after_same
    # the contacts age out: three weeks later the customer is rested again
    assert truth.probability(0, "savings_boost", "web", memory, now=40 * DAY) == fresh


def test_an_offer_the_customer_took_has_probability_zero() -> None:
    truth, memory = Truth(np.zeros((1, len(NEEDS)))), ContactMemory()
    memory.holds.add("loan_personal")
    assert truth.probability(0, "loan_personal", "call_centre", memory) == 0.0
    assert truth.probability(0, "card_cashback", "call_centre", memory) > 0.0


def test_needs_drive_the_response_and_the_assisted_channel_says_yes_more() -> None:
    needs = np.zeros((2, len(NEEDS)))
    needs[1, NEEDS.index("borrow")] = 2.0
    truth, memory = Truth(needs), ContactMemory()
    p = {(row, channel): truth.probability(row, "loan_personal", channel, memory) for row in (0, 1)
         for channel in ("web", "call_centre", "email")}  # fmt: skip
    assert p[1, "web"] > 5 * p[0, "web"]
    assert p[0, "call_centre"] > p[0, "web"] > p[0, "email"]


def test_the_bank_is_the_same_for_a_seed_and_matches_the_catalogue_schema() -> None:
    a, b, other = generate_bank(300, seed=4), generate_bank(300, seed=4), generate_bank(300, seed=5)
    assert a.features == b.features and np.array_equal(a.needs, b.needs)
    assert a.features != other.features
    schema = {f.name for f in load_catalogue(CATALOGUE_DIR).features}
    assert set(a.features[0]) == schema


def test_features_reveal_the_needs_only_in_part() -> None:
    bank = generate_bank(5000, seed=1)
    overdraft = np.array([f["overdraft_days_90d"] for f in bank.features])
    savings = np.log1p([f["balance_savings"] for f in bank.features])
    borrow_corr = np.corrcoef(overdraft, bank.need("borrow"))[0, 1]
    wealth_corr = np.corrcoef(savings, bank.need("wealth"))[0, 1]
    assert 0.5 < borrow_corr < 0.98 and 0.5 < wealth_corr < 0.98
