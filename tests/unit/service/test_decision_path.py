"""The decision path on fakes: locks, idempotent retries, recording and undo, shedding, data quality."""

from __future__ import annotations

import asyncio

import pytest

from decisioning.types import DAY, Direction, Outcome
from service.commands import Decide
from service.decisions import InFlightLimit
from service.errors import InvalidInput, Overloaded, Unavailable
from service.metrics import Metrics


def offers(result) -> list[str]:
    return [p.offer.id for p in result.decision.offers]


def sample(world, name: str, **labels: str) -> float:
    return world.service.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_decision_is_recorded_under_the_customers_lock_before_it_is_returned(world):
    result = await world.service.decide(Decide("c-1", "web", max_offers=2))
    assert offers(result) == ["card", "loan"] and not result.replayed
    stored = world.history.decisions[result.decision.decision_id]
    assert [c.offer_id for c in stored.contacts] == ["card", "loan"]
    assert all(c.outcome is Outcome.PRESENTED and c.direction is Direction.INBOUND for c in stored.contacts)
    assert world.locks.held == ["c-1"]


async def test_a_cache_miss_rebuilds_the_summary_once_and_stores_it(world):
    await world.service.decide(Decide("c-1", "web"))
    assert world.history.summary_calls == 1
    assert [e.offer_id for e in world.cache.summaries["c-1"].events] == ["card"]
    second = await world.service.decide(Decide("c-1", "web"))
    assert world.history.summary_calls == 1  # the appended summary served the second decision
    assert offers(second) == ["loan"]  # the card was presented today: once_a_day suppresses it


async def test_a_retried_request_id_gets_the_same_decision_written_once(world):
    first = await world.service.decide(Decide("c-1", "web", max_offers=2, request_id="page-1"))
    again = await world.service.decide(Decide("c-1", "web", max_offers=2, request_id="page-1"))
    assert again.replayed and again.decision.decision_id == first.decision.decision_id
    assert offers(again) == offers(first)
    assert [p.treatment for p in again.decision.offers] == [p.treatment for p in first.decision.offers]
    assert [p.priority for p in again.decision.offers] == [p.priority for p in first.decision.offers]
    assert len(world.history.decisions) == 1


async def test_a_request_id_reused_for_another_customer_is_refused(world):
    await world.service.decide(Decide("c-1", "web", request_id="page-1"))
    with pytest.raises(InvalidInput) as err:
        await world.service.decide(Decide("c-2", "web", request_id="page-1"))
    assert err.value.field == "request_id"


async def test_a_decision_the_history_cannot_take_is_undone(world):
    world.history.down = True
    with pytest.raises(Unavailable):
        await world.service.decide(Decide("c-1", "web", max_offers=3))
    assert world.budgets.used == {"budget:loan:2026-11-23": 0}  # the loan's unit went back
    world.history.down = False
    assert world.cache.summaries["c-1"].events == ()  # rebuilt without the unmade decision
    assert offers(await world.service.decide(Decide("c-1", "web"))) == ["card"]


async def test_a_record_that_cannot_be_stored_fails_only_its_own_decision(world):
    world.cache.features["c-bad"] = {"age": 40}
    world.history.unstorable = {"c-bad"}
    good = [world.service.decide(Decide(f"c-{i}", "web")) for i in range(5)]
    results = await asyncio.gather(world.service.decide(Decide("c-bad", "web")), *good, return_exceptions=True)
    assert isinstance(results[0], InvalidInput) and results[0].field == "context"
    assert all(not isinstance(r, Exception) for r in results[1:])
    assert len(world.history.decisions) == 5


async def test_a_busy_customer_lock_is_a_retryable_unavailable(world):
    world.locks.busy = {"c-1"}
    with pytest.raises(Unavailable, match="concurrent decisions"):
        await world.service.decide(Decide("c-1", "web"))
    assert sample(world, "nbo_errors_total", kind="customer_lock") == 1


def test_in_flight_limit_sheds_beyond_its_limit():
    limit = InFlightLimit(1, Metrics())
    with limit, pytest.raises(Overloaded):
        limit.__enter__()
    with limit:  # released: accepted again
        assert limit.current == 1


async def test_unknown_channel_and_too_many_offers_name_their_field(build):
    world = build(max_offers_limit=2)
    for command, field in ((Decide("c-1", "fax"), "channel"), (Decide("c-1", "web", max_offers=3), "max_offers")):
        with pytest.raises(InvalidInput) as err:
            await world.service.decide(command)
        assert err.value.field == field


async def test_a_failing_summary_append_leaves_the_decision_standing(world):
    await world.service.decide(Decide("c-1", "web"))
    world.cache.appends_fail = True
    result = await world.service.decide(Decide("c-1", "web"))
    assert result.decision.decision_id in world.history.decisions
    assert sample(world, "nbo_errors_total", kind="summary_update") == 1


async def test_an_outbound_decision_selects_and_counts_against_the_outbound_cap(world):
    first = await world.service.decide(Decide("c-1", "email"))
    stored = world.history.decisions[first.decision.decision_id].contacts
    assert [(c.direction, c.outcome) for c in stored] == [(Direction.OUTBOUND, Outcome.SELECTED)]
    assert first.decision.direction is Direction.OUTBOUND
    world.clock.advance(1.5 * DAY)  # beyond once_a_day, within the 48 h the selection counts unconfirmed
    assert offers(await world.service.decide(Decide("c-1", "sms"))) == []
    assert offers(await world.service.decide(Decide("c-1", "web"))) == ["card"]  # inbound is not capped


async def test_an_unconfirmed_selection_stops_counting_after_its_confirmation_period(world):
    await world.service.decide(Decide("c-1", "email"))
    world.clock.advance(3 * DAY)  # email selections count 48 h unconfirmed
    assert offers(await world.service.decide(Decide("c-1", "sms"))) == ["card"]


async def test_data_quality_is_counted_for_known_and_unknown_customers(world):
    await world.service.decide(Decide("c-never-seen", "web"))
    assert sample(world, "nbo_unknown_customers_total", channel="web") == 1
