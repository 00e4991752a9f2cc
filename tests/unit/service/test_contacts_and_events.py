"""Outbound sends and customer events on fakes."""

from __future__ import annotations

import pytest

from decisioning.catalogue import Level
from decisioning.summary import HistorySummary
from decisioning.types import DAY
from service.commands import ApplyEvent, Decide, ReportSend
from service.errors import InvalidInput
from tests.unit.factories import catalogue, offer, policy


def offered(result) -> list[str]:
    return [p.offer.id for p in result.decision.offers]


async def test_a_confirmed_selection_is_one_contact_under_a_presented_or_sent_cap(build):
    cap = policy("two_contacts", ["presented", "sent"], Level.ALL, days=7, threshold=2)
    world = build(catalogue([offer("card"), offer("loan", "loans")], [cap], outbound={"email": 2 * DAY}))
    selection = (await world.service.decide(Decide("c-1", "email"))).decision
    sent = ReportSend("mail-1", "c-1", "card", "email", decision_id=selection.decision_id)
    result = await world.service.record_contacts([sent])
    assert result.recorded == 1 and result.sends[0].confirms == selection.decision_id
    # One contact so far (the selection became the send): a second one is still allowed, then the cap holds.
    assert offered(await world.service.decide(Decide("c-1", "web"))) == ["card"]
    assert offered(await world.service.decide(Decide("c-1", "web"))) == []


async def test_a_confirmation_must_name_an_outbound_selection_of_that_offer(world):
    inbound = (await world.service.decide(Decide("c-1", "web"))).decision
    for decision_id in (inbound.decision_id, "d-unknown"):
        with pytest.raises(InvalidInput) as err:
            await world.service.record_contacts([ReportSend("m-1", "c-1", "card", "email", decision_id=decision_id)])
        assert err.value.field == "contacts.0.decision_id"
    assert world.history.contacts == list(world.history.decisions[inbound.decision_id].contacts)


async def test_a_send_decided_elsewhere_is_recorded_over_a_cap_and_says_so(world):
    sends = [ReportSend(f"m-{i}", "c-1", "savings", "email", at=world.clock.now + i) for i in range(2)]
    result = await world.service.record_contacts(sends)
    assert result.recorded == 2
    # The second sees the first: over the offer's daily cap and the weekly outbound cap, both named.
    assert [s.over_policies for s in result.sends] == [(), ("once_a_day", "outbound_weekly")]
    assert offered(await world.service.decide(Decide("c-1", "sms"))) == []  # the weekly outbound cap holds


async def test_a_send_over_a_budget_is_recorded_and_flagged(world):
    await world.service.decide(Decide("c-1", "web", max_offers=3))  # takes the loan's one unit today
    result = await world.service.record_contacts([ReportSend("m-1", "c-2", "loan", "email")])
    assert result.recorded == 1 and result.sends[0].over_budget


async def test_a_retried_list_records_nothing_twice_and_rebuilds_no_summary(world):
    sends = [ReportSend(f"m-{i}", f"c-{i}", "savings", "email", campaign="nov") for i in range(20)]
    world.cache.summaries.update({f"c-{i}": HistorySummary() for i in range(20)})  # warm summaries
    first = await world.service.record_contacts(sends)
    calls = world.history.summary_calls
    again = await world.service.record_contacts([*sends, ReportSend("m-new", "c-0", "card", "email")])
    assert (first.recorded, again.recorded) == (20, 1)
    assert world.history.summary_calls == calls
    assert [s.recorded for s in again.sends] == [False] * 20 + [True]
    assert [e.offer_id for e in world.cache.summaries["c-0"].events] == ["savings", "card"]


async def test_budget_units_of_a_retried_send_are_given_back(world):
    send = ReportSend("m-1", "c-2", "loan", "email")
    await world.service.record_contacts([send])
    again = await world.service.record_contacts([send])
    assert not again.sends[0].recorded and not again.sends[0].over_budget
    assert world.budgets.used == {"budget:loan:2026-11-23": 1}


async def test_sends_name_their_bad_field(world):
    with pytest.raises(InvalidInput) as err:
        sends = [ReportSend("m", "c-1", "card", "email"), ReportSend("m", "c-1", "x", "email")]
        await world.service.record_contacts(sends)
    assert err.value.field == "contacts.1.offer_id"


async def test_an_event_updates_features_and_bad_events_name_their_field(world):
    result = await world.service.apply_event(ApplyEvent("c-1", "card_declined", {"amount": 5}))
    assert result.updated == ("card_declined_count",) and world.cache.updates[0][0] == "c-1"
    for command, field in (
        (ApplyEvent("c-1", "salary"), "type"),
        (ApplyEvent("c-1", "card_declined", {"amount": "lots"}), "attributes"),
    ):
        with pytest.raises(InvalidInput) as err:
            await world.service.apply_event(command)
        assert err.value.field == field

