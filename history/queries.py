"""The history's reads as SQLAlchemy selects with named parameters: one definition of each query's meaning.

`SqlHistory` executes them through SQLAlchemy on PostgreSQL, and on SQLite compiles each once to SQL text
for its plain `sqlite3` readers (see `history.sqlite_reader`): the two paths cannot drift apart.

Each function returns the same select object for the same shape (an optional bound is a second shape), so
that both paths compile it once.

>>> query = latest_contact(bounded=True)
>>> sorted(query.compile().params)
['at_or_before', 'customer_id', 'offer_id', 'param_1']
"""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa

from history.tables import contacts, decisions, responses

# Tables whose newest rows `newest` reads, with their time column.
TIME_COLUMNS = {"contacts": "contacted_at", "responses": "responded_at"}


@cache
def latest_contact(bounded: bool) -> sa.Select[Any]:
    """The newest contact of `offer_id` to `customer_id` (made at or before `at_or_before` when bounded).
    Ties in time go to the greatest `contact_id`: deterministic."""
    query = sa.select(contacts).where(
        contacts.c.customer_id == sa.bindparam("customer_id"), contacts.c.offer_id == sa.bindparam("offer_id")
    )
    if bounded:
        query = query.where(contacts.c.contacted_at <= sa.bindparam("at_or_before"))
    return query.order_by(contacts.c.contacted_at.desc(), contacts.c.contact_id.desc()).limit(1)


@cache
def find_contact() -> sa.Select[Any]:
    """The contact of `offer_id` in the decision (or outbound send) `contact_id`."""
    return sa.select(contacts).where(
        contacts.c.contact_id == sa.bindparam("contact_id"), contacts.c.offer_id == sa.bindparam("offer_id")
    )


@cache
def decision_for_request() -> sa.Select[Any]:
    """The decision recorded for `request_id`."""
    return sa.select(decisions).where(decisions.c.request_id == sa.bindparam("request_id"))


@cache
def contacts_of() -> sa.Select[Any]:
    """The contacts of decision `contact_id` (any order: `rows.decision_from_rows` sorts them)."""
    return sa.select(contacts).where(contacts.c.contact_id == sa.bindparam("contact_id"))


@cache
def newest(table_name: str, bounded: bool) -> sa.Select[Any]:
    """The newest `limit` rows of `customer_id` in `table_name` by its time column (at or after `since`
    when bounded). Ties in time are broken by the primary key, so that listings are deterministic."""
    table = _TABLES[table_name]
    at = table.c[TIME_COLUMNS[table_name]]
    query = sa.select(table).where(table.c.customer_id == sa.bindparam("customer_id"))
    if bounded:
        query = query.where(at >= sa.bindparam("since"))
    return query.order_by(at.desc(), *table.primary_key.columns).limit(sa.bindparam("limit", type_=sa.Integer))


@cache
def since(table_name: str) -> sa.Select[Any]:
    """Every row of `table_name` at or after `since` (the start-up scan of `SqlHistory.summaries`)."""
    table = _TABLES[table_name]
    return sa.select(table).where(table.c[TIME_COLUMNS[table_name]] >= sa.bindparam("since"))


_TABLES = {"contacts": contacts, "responses": responses}
