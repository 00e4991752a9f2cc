"""The contact history as training material: every presented or sent offer with its decision's stored
features and a summary of its responses, streamed oldest first in bounded chunks.

One query, run on the server: contacts (`presented`, `sent`; an unconfirmed `selected` never reached the
customer) left-joined to the decision they belong to (its own id, or the outbound decision a send
confirms) and to the per-(decision, offer) response summary: the first `accepted`, the first explicit
refusal (`declined`, `ignored`) and the first `not_displayed`, each among the responses known by `until`.
Responses are keyed by decision id: the service attributes every response to its contact (by the
decision id given, or the latest contact of that offer in any channel) before it stores it, so a
response from another channel is found by the same key. Which contacts are settled, and with what label,
is decided in `models.settling` (the windows are the catalogue's, not the database's).

Memory stays bounded: rows come through a server-side cursor (`yield_per`), `chunk_rows` at a time.

>>> async for chunk in stream_training_contacts(engine, since, until, chunk_rows=50_000):  # doctest: +SKIP
...     ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from history.tables import EpochSeconds, contacts, decisions, responses

CONTACT_OUTCOMES = ("presented", "sent")
REFUSALS = ("declined", "ignored")


class TrainingContact(NamedTuple):
    """One contact as training reads it. `features` is None when its decision kept none (recorded before
    migration 0004, or a send made without a decision); times are epoch seconds."""

    contact_id: str
    decision_id: str
    offer_id: str
    customer_id: str
    at: float
    channel: str
    group: str
    intent: str | None
    features: list[Any] | None
    feature_schema: str | None
    accepted_at: float | None
    refused_at: float | None
    not_displayed_at: float | None


def _first(outcomes: tuple[str, ...], name: str) -> sa.Label[Any]:
    when = sa.case((responses.c.outcome.in_(outcomes), responses.c.responded_at))
    return sa.type_coerce(sa.func.min(when), EpochSeconds()).label(name)


def response_summary(until: float) -> sa.Subquery:
    """Per (decision, offer): when it was first accepted, refused and reported not displayed."""
    return (
        sa.select(
            responses.c.decision_id,
            responses.c.offer_id,
            _first(("accepted",), "accepted_at"),
            _first(REFUSALS, "refused_at"),
            _first(("not_displayed",), "not_displayed_at"),
        )
        .where(responses.c.decision_id.is_not(None), responses.c.responded_at <= until)
        .group_by(responses.c.decision_id, responses.c.offer_id)
        .subquery("answers")
    )


def training_query(since: float | None, until: float) -> sa.Select[Any]:
    """The contacts made in [since, until), oldest first, with their decision and response summary."""
    key = sa.func.coalesce(contacts.c.decision_id, contacts.c.contact_id)
    answers = response_summary(until)
    joined = contacts.outerjoin(decisions, decisions.c.decision_id == key).outerjoin(
        answers, sa.and_(answers.c.decision_id == key, answers.c.offer_id == contacts.c.offer_id)
    )
    query = (
        sa.select(
            contacts.c.contact_id,
            key.label("decision_id"),
            contacts.c.offer_id,
            contacts.c.customer_id,
            contacts.c.contacted_at,
            contacts.c.channel,
            contacts.c.group_id,
            decisions.c.intent,
            # As text, decoded with orjson below: much faster than the driver's JSON codec for 1M rows.
            sa.cast(decisions.c.features, sa.Text()).label("features"),
            decisions.c.feature_schema,
            answers.c.accepted_at,
            answers.c.refused_at,
            answers.c.not_displayed_at,
        )
        .select_from(joined)
        .where(contacts.c.outcome.in_(CONTACT_OUTCOMES), contacts.c.contacted_at < until)
        .order_by(contacts.c.contacted_at, contacts.c.contact_id, contacts.c.offer_id)
    )
    return query if since is None else query.where(contacts.c.contacted_at >= since)


def count_query(since: float | None, until: float) -> sa.Select[Any]:
    """How many contacts `training_query` will stream (for a progress bar)."""
    query = sa.select(sa.func.count()).select_from(contacts)
    query = query.where(contacts.c.outcome.in_(CONTACT_OUTCOMES), contacts.c.contacted_at < until)
    return query if since is None else query.where(contacts.c.contacted_at >= since)


async def count_training_contacts(engine: AsyncEngine, since: float | None, until: float) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(count_query(since, until))).scalar_one())


async def stream_training_contacts(
    engine: AsyncEngine, since: float | None, until: float, *, chunk_rows: int = 50_000
) -> AsyncIterator[list[TrainingContact]]:
    """The contacts of [since, until) in time order, `chunk_rows` at a time (see the module doc)."""
    async with engine.connect() as conn:
        result = await conn.stream(training_query(since, until), execution_options={"yield_per": chunk_rows})
        async for rows in result.partitions(chunk_rows):
            yield [_contact(row) for row in rows]


def _contact(row: sa.Row[Any]) -> TrainingContact:
    values = tuple(row)
    features = values[8]
    return TrainingContact(*values[:8], None if features is None else orjson.loads(features), *values[9:])
