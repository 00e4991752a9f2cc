"""Budget reservations and responses on fakes: units come back, responses attribute and dedupe."""

from __future__ import annotations

import pytest

from decisioning.catalogue import Budget, BudgetPeriod
from decisioning.types import DAY, HOUR, Outcome
from service.budgets import BudgetReservations
from service.commands import Decide, Respond
from service.errors import InvalidInput, NotFound
from service.metrics import Metrics
from tests.unit.factories import FixedScorer, catalogue, offer
from tests.unit.service.fakes import FakeBudgets


def loan_only():
    return catalogue([offer("loan", "loans", budget=Budget(1, BudgetPeriod.DAY))])


def offered(result) -> list[str]:
    return [p.offer.id for p in result.decision.offers]


async def test_a_used_up_budget_drops_the_offer_and_is_remembered(build):
    world = build(loan_only())
    assert offered(await world.service.decide(Decide("c-1", "web"))) == ["loan"]
    assert offered(await world.service.decide(Decide("c-2", "web"))) == []
    assert world.service.budgets.known_exhausted(world.clock.now) == {"loan"}


async def test_a_unit_given_back_by_not_displayed_is_offered_again_at_once(build):
    world = build(loan_only())
    first = await world.service.decide(Decide("c-1", "web"))
    await world.service.decide(Decide("c-2", "web"))  # finds the budget used up
    answer = Respond("c-1", "loan", "web", Outcome.NOT_DISPLAYED, first.decision.decision_id)
    assert (await world.service.respond(answer)).recorded
    assert offered(await world.service.decide(Decide("c-3", "web"))) == ["loan"]
    assert (await world.service.respond(answer)).recorded is False  # the unit is given back once
    assert world.budgets.used["budget:loan:2026-11-23"] == 1


async def test_the_exhausted_memory_expires_so_units_freed_elsewhere_come_back():
    counter, ticks = FakeBudgets(), [0.0]
    budgets = BudgetReservations(loan_only(), counter, Metrics(), memory_seconds=5, monotonic=lambda: ticks[0])
    loan = loan_only().offers[0]
    assert await budgets.reserve_one(loan, 0.0) and not await budgets.reserve_one(loan, 0.0)
    assert budgets.known_exhausted(0.0) == {"loan"}
    await counter.release(budgets.key(loan, 0.0))  # another replica gave a unit back
    ticks[0] = 5.0
    assert budgets.known_exhausted(0.0) == frozenset()


def test_budget_keys_follow_the_catalogues_day_and_campaigns():
    cat = catalogue([offer("a", budget=Budget(5, BudgetPeriod.CAMPAIGN)), offer("b", budget=Budget(5))])
    budgets = BudgetReservations(cat, FakeBudgets(), Metrics())
    assert budgets.key(cat.offers[0], 0.0) == "budget:a:campaign"
    assert budgets.key(cat.offers[1], 0.0) == "budget:b:1970-01-01"


async def test_a_response_is_attributed_to_its_decision_and_idempotent(world):
    decision = (await world.service.decide(Decide("c-1", "web"))).decision
    answer = Respond("c-1", "card", "call_centre", Outcome.DECLINED, decision.decision_id)
    first, again = await world.service.respond(answer), await world.service.respond(answer)
    assert first.decision_id == decision.decision_id and first.recorded and not again.recorded
    assert first.response_id == again.response_id
    world.clock.advance(DAY + 1)  # beyond once_a_day: the decline's cool-off still holds
    assert "card" not in offered(await world.service.decide(Decide("c-1", "web", max_offers=3)))


async def test_a_response_without_decision_answers_the_contact_made_before_it(world):
    first = (await world.service.decide(Decide("c-1", "web"))).decision
    world.clock.advance(DAY + HOUR)
    later = (await world.service.decide(Decide("c-1", "mobile"))).decision
    assert [p.offer.id for p in later.offers] == ["card"]
    answer = Respond("c-1", "card", "call_centre", Outcome.ACCEPTED, at=first.context.now + HOUR)
    assert (await world.service.respond(answer)).decision_id == first.decision_id
    now = Respond("c-1", "card", "call_centre", Outcome.ACCEPTED)
    assert (await world.service.respond(now)).decision_id == later.decision_id


async def test_a_response_to_an_offer_never_contacted_is_idempotent_on_its_day(world):
    answer = Respond("c-1", "savings", "call_centre", Outcome.ACCEPTED)
    first = await world.service.respond(answer)
    world.clock.advance(HOUR)
    again = await world.service.respond(answer)
    assert first.decision_id is None and first.recorded and not again.recorded
    world.clock.advance(DAY)
    assert (await world.service.respond(answer)).recorded  # another day: another answer


async def test_responses_check_decision_offer_and_customer(world):
    decision = (await world.service.decide(Decide("c-1", "web"))).decision
    with pytest.raises(NotFound):
        await world.service.respond(Respond("c-1", "savings", "web", Outcome.CLICKED, decision.decision_id))
    with pytest.raises(InvalidInput) as err:
        await world.service.respond(Respond("c-2", "card", "web", Outcome.CLICKED, decision.decision_id))
    assert err.value.field == "customer_id"
    with pytest.raises(InvalidInput) as err:
        await world.service.respond(Respond("c-1", "nope", "web", Outcome.CLICKED))
    assert err.value.field == "offer_id"


def test_fixed_scorer_is_the_scorer_port():
    assert FixedScorer().for_customer("c-1").version == "fixed-1"
