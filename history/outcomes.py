"""Outcome queries over the contact history, for learning and for comparing models and groups.

- `offer_response_counts`: per offer, how many times it was put in front of a customer and how many of
  those contacts were accepted: the counts behind the cold-start Beta posteriors (`models.posterior`).
- `group_outcomes`: per (model version, control group), decisions, contacts, accepted contacts and the
  sum (and sum of squares) of the value of accepted contacts: what `nbo models compare` reports.

A contact is a row of `contacts` presented inbound or sent/selected outbound; a contact is accepted when a
response with outcome `accepted` names its decision and offer. Both run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from history.tables import contacts, decisions, responses

ACCEPTED = "accepted"
# `selected` is left out of the learning counts: a confirmed selection is also stored as its `sent` row.
LEARNING_CONTACTS = ("presented", "sent")
DECISION_CONTACTS = ("presented", "selected")  # the rows a decision itself wrote (contact_id = decision_id)


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """The outcomes of one (model version, control group) cell of the history."""

    model_version: str
    control_group: bool
    decisions: int
    contacts: int
    accepted: int
    value_sum: float
    value_sq_sum: float


async def offer_response_counts(engine: AsyncEngine, since: float | None = None) -> Mapping[str, tuple[int, int]]:
    """offer id -> (accepted, contacts), over contacts made at or after `since` (all when None).

    >>> await offer_response_counts(history.engine)   # doctest: +SKIP
    {'card_gold': (12, 340), ...}
    """
    shown = sa.select(contacts.c.offer_id, sa.func.count().label("n")).where(contacts.c.outcome.in_(LEARNING_CONTACTS))
    took = sa.select(responses.c.offer_id, sa.func.count().label("n")).where(responses.c.outcome == ACCEPTED)
    if since is not None:
        shown, took = shown.where(contacts.c.contacted_at >= since), took.where(responses.c.responded_at >= since)
    async with engine.connect() as conn:
        presented = {o: n for o, n in (await conn.execute(shown.group_by(contacts.c.offer_id))).all()}
        accepted = {o: n for o, n in (await conn.execute(took.group_by(responses.c.offer_id))).all()}
    return {offer: (int(accepted.get(offer, 0)), int(n)) for offer, n in presented.items()}


async def group_outcomes(engine: AsyncEngine, since: float | None = None) -> list[GroupOutcome]:
    """Outcomes per (model version, control group) of the decisions made at or after `since`."""
    async with engine.connect() as conn:
        cells = (await conn.execute(_contact_cells(since))).all()
        counts = (await conn.execute(_decision_cells(since))).all()
    made = {(m, bool(g)): int(n) for m, g, n in counts}
    out: dict[tuple[str, bool], GroupOutcome] = {}
    for m, g, n, a, s, q in cells:
        key = (m, bool(g))
        out[key] = GroupOutcome(m, key[1], made.get(key, 0), int(n), int(a or 0), float(s or 0), float(q or 0))
    for key, n in made.items():  # decisions that presented nothing (e.g. a control group shown no offer)
        out.setdefault(key, GroupOutcome(key[0], key[1], n, 0, 0, 0.0, 0.0))
    return sorted(out.values(), key=lambda g: (g.model_version, g.control_group))


def _contact_cells(since: float | None) -> sa.Select:
    accepted = (
        sa.select(responses.c.decision_id, responses.c.offer_id)
        .where(responses.c.outcome == ACCEPTED, responses.c.decision_id.is_not(None))
        .distinct()
        .subquery("accepted")
    )
    took = accepted.c.offer_id.is_not(None)
    value = sa.case((took, sa.func.coalesce(contacts.c.value, 0.0)), else_=0.0)
    query = (
        sa.select(
            decisions.c.model_version,
            decisions.c.control_group,
            sa.func.count(),
            sa.func.sum(sa.case((took, 1), else_=0)),
            sa.func.sum(value),
            sa.func.sum(value * value),
        )
        .select_from(contacts)
        .join(decisions, decisions.c.decision_id == contacts.c.contact_id)
        .outerjoin(
            accepted,
            sa.and_(accepted.c.decision_id == contacts.c.contact_id, accepted.c.offer_id == contacts.c.offer_id),
        )
        .where(contacts.c.outcome.in_(DECISION_CONTACTS))
        .group_by(decisions.c.model_version, decisions.c.control_group)
    )
    return query if since is None else query.where(decisions.c.decided_at >= since)


def _decision_cells(since: float | None) -> sa.Select:
    query = sa.select(decisions.c.model_version, decisions.c.control_group, sa.func.count()).group_by(
        decisions.c.model_version, decisions.c.control_group
    )
    return query if since is None else query.where(decisions.c.decided_at >= since)
