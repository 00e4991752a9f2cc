"""The outcome queries behind `nbo models compare` and the cold-start posteriors, on SQLite and PostgreSQL."""

from __future__ import annotations

from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import Direction, Outcome
from history import SqlHistory
from history.outcomes import GroupOutcome, group_outcomes, offer_response_counts

T0 = 1_790_000_000.0




async def seed_decision(
    history: SqlHistory, n: int, version: str, *, control: bool = False, offers: tuple[str, ...] = ("a",), at=T0
) -> str:
    decision_id = f"d-{version}-{control}-{n}"
    contacts = tuple(
        ContactRecord(decision_id, f"c-{n}", at, "web", Direction.INBOUND, o, "cards", Outcome.PRESENTED,
                      rank=r, value=100.0 * r, model_version=version, catalogue_version="cat")
        for r, o in enumerate(offers, start=1)
    )  # fmt: skip
    record = DecisionRecord(decision_id, f"c-{n}", at, "web", None, None, control, version, "cat", contacts)
    assert await history.record_decision(record)
    return decision_id


async def respond(history: SqlHistory, decision_id: str, offer_id: str, outcome: str = "accepted", at=T0 + 60):
    response = ResponseRecord(
        f"r-{decision_id}-{offer_id}-{outcome}", "c-x", offer_id, "web", Outcome(outcome), at, decision_id, "cards"
    )
    assert await history.record_response(response)


async def test_group_outcomes_count_decisions_contacts_accepts_and_value_per_model_and_group(history):
    for n in range(4):
        d = await seed_decision(history, n, "m1", offers=("a", "b"))
        if n < 2:
            await respond(history, d, "b")  # accepted: value 200
        await respond(history, d, "a", "declined")
    champion_accepted = await seed_decision(history, 9, "m1")
    await respond(history, champion_accepted, "a", "clicked")
    await respond(history, champion_accepted, "a")  # clicked, then accepted: one accepted contact
    for n in range(3):
        await seed_decision(history, n, "m1", control=True)
    cells = await group_outcomes(history.engine)
    assert cells == [
        GroupOutcome("m1", False, decisions=5, contacts=9, accepted=3, value_sum=500.0, value_sq_sum=90_000.0),
        GroupOutcome("m1", True, decisions=3, contacts=3, accepted=0, value_sum=0.0, value_sq_sum=0.0),
    ]
    assert await group_outcomes(history.engine, since=T0 + 1) == []


async def test_a_decision_that_presented_nothing_still_counts_as_a_decision(history):
    await seed_decision(history, 1, "m1", control=True, offers=())
    assert await group_outcomes(history.engine) == [GroupOutcome("m1", True, 1, 0, 0, 0.0, 0.0)]


async def test_offer_response_counts_are_accepted_and_contacts_per_offer(history):
    for n in range(5):
        d = await seed_decision(history, n, "m1", offers=("a", "b"))
        if n < 3:
            await respond(history, d, "a")
        await respond(history, d, "b", "declined")
    assert await offer_response_counts(history.engine) == {"a": (3, 5), "b": (0, 5)}
    assert await offer_response_counts(history.engine, since=T0 + 1) == {}
