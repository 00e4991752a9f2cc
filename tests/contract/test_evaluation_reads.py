"""What offline evaluation reads from the SQL history, on SQLite and PostgreSQL: the logged decisions with
their offers, probabilities, features and response summary, whether an outbound selection was sent, and
the customers' histories with the moment each event was known."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import AsyncEngine

from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import DAY, Direction, Outcome
from evaluation.history_reads import read_histories, read_logged_decisions
from history.sql import SqlHistory

# Five days ago: a response is known from when it is recorded (the wall clock), inside the windows read.
NOW = float(int(time.time() - 5 * DAY))  # whole seconds: stored to the microsecond


def decision(decision_id: str, at: float, offers: list[tuple[str, float]], outbound: bool = False) -> DecisionRecord:
    outcome, channel = (Outcome.SELECTED, "email") if outbound else (Outcome.PRESENTED, "web")
    direction = Direction.OUTBOUND if outbound else Direction.INBOUND
    contacts = tuple(
        ContactRecord(decision_id, "c-1", at, channel, direction, offer_id, "cards", outcome, rank=rank,
                      value=8.0, selection_probability=probability)
        for rank, (offer_id, probability) in enumerate(offers, start=1)
    )  # fmt: skip
    return DecisionRecord(
        decision_id, "c-1", at, channel, None, "browse", False, "m-1", "cat-1", contacts,
        context={"page": "cards"}, features=(40, 3000.0, "mass"), feature_schema="schema-1",
    )  # fmt: skip


async def test_logged_decisions_and_histories(history: SqlHistory):
    await history.record_decision(decision("d-1", NOW, [("card_gold", 0.8), ("loan", 0.5)]))
    await history.record_decision(decision("d-2", NOW + DAY, [("card_gold", 0.7), ("savings", 0.3)], outbound=True))
    sent = ContactRecord("s-1", "c-1", NOW + DAY + 60, "email", Direction.OUTBOUND, "card_gold", "cards",
                         Outcome.SENT, decision_id="d-2")  # fmt: skip
    await history.record_contacts([sent])
    await history.record_response(
        ResponseRecord("r-1", "c-1", "card_gold", "web", Outcome.ACCEPTED, NOW + 3600, decision_id="d-1", group="cards")
    )
    engine: AsyncEngine = history.engine

    logged = await read_logged_decisions(engine, since=NOW - 1, until=NOW + 10 * DAY)
    assert [d.decision_id for d in logged] == ["d-1", "d-2"]
    first = logged[0]
    assert (first.at, first.channel, first.intent, first.context) == (NOW, "web", "browse", {"page": "cards"})
    assert first.features == [40, 3000.0, "mass"] and first.feature_schema == "schema-1"
    assert [(o.offer_id, o.rank, o.selection_probability, o.value) for o in first.offers] == [
        ("card_gold", 1, 0.8, 8.0),
        ("loan", 2, 0.5, 8.0),
    ]
    assert first.offers[0].accepted_at == NOW + 3600 and first.offers[1].accepted_at is None
    assert [(o.offer_id, o.never_sent) for o in logged[1].offers] == [("card_gold", False), ("savings", True)]

    assert [d.decision_id for d in await read_logged_decisions(engine, since=NOW + 1, until=NOW + 10 * DAY)] == ["d-2"]
    before_the_response = await read_logged_decisions(engine, since=None, until=NOW + 60)
    assert before_the_response[0].offers[0].accepted_at is None

    histories = await read_histories(engine, {"c-1"}, NOW - 1, NOW + 10 * DAY, {"card_gold": "cards"})
    events = [(k.event.offer_id, k.event.outcome.value) for k in histories["c-1"]]
    # In the order the service knew them: the acceptance of an hour after d-1 was recorded only now.
    assert events == [
        ("card_gold", "presented"), ("loan", "presented"), ("card_gold", "selected"), ("savings", "selected"),
        ("card_gold", "sent"), ("card_gold", "accepted"),
    ]  # fmt: skip
    accepted = histories["c-1"][-1]
    assert accepted.event.at == NOW + 3600 and accepted.known_at > NOW + 4 * DAY
    assert await read_histories(engine, {"someone-else"}, NOW - 1, NOW + 10 * DAY, {}) == {}
