"""What replay and evaluation read from the contact history (SQLite or PostgreSQL, through SQLAlchemy Core).

- `read_logged_decisions`: the decisions of [since, until), oldest first, each with its stored features
  (migration 0004), its request context and the offers it presented or selected (rank, logged selection
  probability, value) with their response summary as known at `until` (`history.training_rows`'s);
- `read_histories`: the contacts and responses of the same customers, as the `ContactEvent`s a history
  summary holds, each with the moment the service knew it (a response: when it was recorded), so that a
  replay rebuilds each customer's summary as it was at decision time.

Both read everything into memory: a replay re-decides every decision, so it holds them anyway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from decisioning.summary import RETENTION_SECONDS
from decisioning.types import ContactEvent, Outcome
from history.tables import contacts, decisions, responses
from history.training_rows import response_summary

DECISION_CONTACTS = ("presented", "selected")


@dataclass(frozen=True, slots=True)
class LoggedOffer:
    """One offer a logged decision presented (or selected, outbound), with what became of it."""

    offer_id: str
    group: str
    rank: int
    selection_probability: float | None
    value: float | None
    accepted_at: float | None
    refused_at: float | None
    not_displayed_at: float | None


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as the history kept it: enough to make it again."""

    decision_id: str
    customer_id: str
    at: float
    channel: str
    placement: str | None
    intent: str | None
    control_group: bool
    model_version: str
    catalogue_version: str
    context: Mapping[str, Any]
    features: list[Any] | None
    feature_schema: str | None
    offers: tuple[LoggedOffer, ...]


@dataclass(frozen=True, slots=True)
class KnownEvent:
    """A history event and when the service knew it."""

    known_at: float
    event: ContactEvent


def _decisions_query(since: float | None, until: float) -> sa.Select[Any]:
    answers = response_summary(until)
    own = sa.and_(contacts.c.contact_id == decisions.c.decision_id, contacts.c.outcome.in_(DECISION_CONTACTS))
    joined = decisions.outerjoin(contacts, own).outerjoin(
        answers, sa.and_(answers.c.decision_id == decisions.c.decision_id, answers.c.offer_id == contacts.c.offer_id)
    )
    query = (
        sa.select(
            *(decisions.c[name] for name in _DECISION_COLUMNS),
            sa.cast(decisions.c.features, sa.Text()).label("features"),
            sa.cast(decisions.c.context, sa.Text()).label("context"),
            *(contacts.c[name] for name in _CONTACT_COLUMNS),
            answers.c.accepted_at,
            answers.c.refused_at,
            answers.c.not_displayed_at,
        )
        .select_from(joined)
        .where(decisions.c.decided_at < until)
        .order_by(decisions.c.decided_at, decisions.c.decision_id, contacts.c.rank, contacts.c.offer_id)
    )
    return query if since is None else query.where(decisions.c.decided_at >= since)


_DECISION_COLUMNS = (
    "decision_id", "customer_id", "decided_at", "channel", "placement", "intent", "control_group",
    "model_version", "catalogue_version", "feature_schema",
)  # fmt: skip
_CONTACT_COLUMNS = ("offer_id", "group_id", "rank", "selection_probability", "value")


async def read_logged_decisions(engine: AsyncEngine, since: float | None, until: float) -> list[LoggedDecision]:
    """The decisions made in [since, until), oldest first (see the module doc)."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_decisions_query(since, until))).mappings().all()
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(row["decision_id"], []).append(row)
    return [_decision(parts) for parts in grouped.values()]


def _decision(rows: Sequence[Mapping[str, Any]]) -> LoggedDecision:
    first = rows[0]
    offers = tuple(_offer(row, rank) for rank, row in enumerate(rows, start=1) if row["offer_id"] is not None)
    return LoggedDecision(
        decision_id=first["decision_id"],
        customer_id=first["customer_id"],
        at=first["decided_at"],
        channel=first["channel"],
        placement=first["placement"],
        intent=first["intent"],
        control_group=bool(first["control_group"]),
        model_version=first["model_version"],
        catalogue_version=first["catalogue_version"],
        context=orjson.loads(first["context"]) if first["context"] else {},
        features=None if first["features"] is None else orjson.loads(first["features"]),
        feature_schema=first["feature_schema"],
        offers=offers,
    )


def _offer(row: Mapping[str, Any], position: int) -> LoggedOffer:
    return LoggedOffer(
        offer_id=row["offer_id"],
        group=row["group_id"],
        rank=row["rank"] if row["rank"] is not None else position,
        selection_probability=row["selection_probability"],
        value=row["value"],
        accepted_at=row["accepted_at"],
        refused_at=row["refused_at"],
        not_displayed_at=row["not_displayed_at"],
    )


async def read_histories(
    engine: AsyncEngine, customer_ids: set[str], since: float | None, until: float, groups: Mapping[str, str]
) -> dict[str, list[KnownEvent]]:
    """Per customer of `customer_ids`: their contacts and responses from a summary's retention before
    `since` up to `until`, ordered by when the service knew them. `groups` maps an offer to its group, for
    a response stored without one."""
    start = None if since is None else since - RETENTION_SECONDS
    out: dict[str, list[KnownEvent]] = defaultdict(list)
    async with engine.connect() as conn:
        for row in (await conn.execute(_contacts_query(start, until))).all():
            if row.customer_id in customer_ids:
                outcome = Outcome(row.outcome)
                event = ContactEvent(row.at, row.offer_id, row.group_id, row.channel, outcome, row.key)
                out[row.customer_id].append(KnownEvent(row.at, event))
        for row in (await conn.execute(_responses_query(start, until))).all():
            if row.customer_id in customer_ids and row.outcome in Outcome.__members__.values():
                group = row.group_id or groups.get(row.offer_id, "")
                event = ContactEvent(row.at, row.offer_id, group, row.channel, Outcome(row.outcome), row.decision_id)
                out[row.customer_id].append(KnownEvent(row.known_at, event))
    for events in out.values():
        events.sort(key=lambda e: (e.known_at, e.event.at))
    return out


def _contacts_query(start: float | None, until: float) -> sa.Select[Any]:
    key = sa.func.coalesce(contacts.c.decision_id, contacts.c.contact_id).label("key")
    query = sa.select(
        contacts.c.customer_id, contacts.c.contacted_at.label("at"), contacts.c.offer_id, contacts.c.group_id,
        contacts.c.channel, contacts.c.outcome, key,
    ).where(contacts.c.contacted_at < until)  # fmt: skip
    return query if start is None else query.where(contacts.c.contacted_at >= start)


def _responses_query(start: float | None, until: float) -> sa.Select[Any]:
    query = sa.select(
        responses.c.customer_id, responses.c.responded_at.label("at"), responses.c.recorded_at.label("known_at"),
        responses.c.offer_id, responses.c.group_id, responses.c.channel, responses.c.outcome, responses.c.decision_id,
    ).where(responses.c.recorded_at < until)  # fmt: skip
    return query if start is None else query.where(responses.c.recorded_at >= start)
