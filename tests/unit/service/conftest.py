"""The application layer on fakes: a small catalogue, a fixed scorer, a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from decisioning.catalogue import Budget, BudgetPeriod, Catalogue, Level
from service.service import DecisionService
from tests.unit.factories import NOW, FixedScorer, catalogue, offer, policy
from tests.unit.service.fakes import FakeBudgets, FakeCache, FakeEventRules, FakeHistory, FakeLocks

ADULT = {"age": 40}


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    service: DecisionService
    history: FakeHistory
    cache: FakeCache
    budgets: FakeBudgets
    locks: FakeLocks
    clock: Clock
    catalogue: Catalogue = field(repr=False)


def demo_catalogue() -> Catalogue:
    """Three offers: a card (best), a loan with a budget of 1 per day, a savings account; caps:
    an offer at most once a day in any channel, and at most 1 outbound send per week."""
    offers = [
        offer("card", "cards", value=100.0),
        offer("loan", "loans", value=80.0, budget=Budget(1, BudgetPeriod.DAY)),
        offer("savings", "savings", value=50.0),
    ]
    policies = [
        policy("once_a_day", ["presented", "sent"], days=1),
        policy("outbound_weekly", ["sent"], Level.ALL, days=7, channels=["email", "sms"]),
        policy("decline_cool_off", ["declined"], days=30),
    ]
    return catalogue(offers, policies, outbound={"email": 48 * 3600.0, "sms": 24 * 3600.0})


@pytest.fixture
def build() -> Callable[..., World]:
    def _build(cat: Catalogue | None = None, **kw: object) -> World:
        cat = cat or demo_catalogue()
        history, cache, budgets, locks = FakeHistory(), FakeCache({"c-1": ADULT}), FakeBudgets(), FakeLocks()
        clock = Clock()
        scorer = FixedScorer({"card": 0.3, "loan": 0.2, "savings": 0.1})
        service = DecisionService(
            catalogue=cat,
            scorer=scorer,
            cache=cache,
            history=history,
            budgets=budgets,
            events=FakeEventRules(),
            locks=locks,
            clock=clock,
            **kw,  # type: ignore[arg-type]
        )
        return World(service, history, cache, budgets, locks, clock, cat)

    return _build


@pytest.fixture
def world(build: Callable[..., World]) -> World:
    return build()
