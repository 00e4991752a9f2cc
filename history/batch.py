"""What one group-commit transaction writes: decisions, contacts and responses of many callers at once.

Each table gets one multi-row `INSERT ... ON CONFLICT DO NOTHING ... RETURNING key` (SQLAlchemy's
"insertmanyvalues" packs the rows into as few statements as the dialect's parameter limit allows). The
returned keys say which rows were new, which is how each caller learns what it added:
- a decision whose `decision_id` or `request_id` exists already is skipped, and so are its contacts;
- a contact whose (contact_id, offer_id) exists is skipped and not counted;
- a response whose `response_id` exists is skipped and reported as a duplicate (False).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from history.tables import contacts, decisions, responses
from history.writer import Job

DECISION = "decision"  # payload: (decision row, [contact rows])
CONTACTS = "contacts"  # payload: [contact rows]
RESPONSE = "response"  # payload: response row

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


async def write_batch(conn: AsyncConnection, jobs: Sequence[Job]) -> list[Any]:
    """Write the jobs on `conn` (inside the caller's transaction); one result per job, in order.

    A decision's result is None, a contacts job's is the number of rows it added, a response's is whether
    it was new.
    """
    decision_rows = [job.payload[0] for job in jobs if job.kind == DECISION]
    new_decisions = {key[0] for key in await _insert_new(conn, decisions, decision_rows)}
    contact_rows = [row for job in jobs for row in _contact_rows(job, new_decisions)]
    new_contacts = set(await _insert_new(conn, contacts, contact_rows))
    response_rows = [job.payload for job in jobs if job.kind == RESPONSE]
    new_responses = set(await _insert_new(conn, responses, response_rows))
    return [_result(job, new_contacts, new_responses) for job in jobs]


def _contact_rows(job: Job, new_decisions: set[str]) -> list[dict[str, Any]]:
    if job.kind == CONTACTS:
        return job.payload
    if job.kind == DECISION and job.payload[0]["decision_id"] in new_decisions:
        return job.payload[1]
    return []


def _result(job: Job, new_contacts: set[tuple], new_responses: set[tuple]) -> Any:
    if job.kind == CONTACTS:
        return _claim(new_contacts, [(row["contact_id"], row["offer_id"]) for row in job.payload])
    if job.kind == RESPONSE:
        return _claim(new_responses, [(job.payload["response_id"],)]) == 1
    return None


def _claim(new: set[tuple], keys: list[tuple]) -> int:
    """How many of `keys` were inserted. Each inserted key is credited once, so a row sent twice (by one
    caller or by two callers of the same batch) counts for the first only."""
    added = 0
    for key in keys:
        if key in new:
            new.discard(key)
            added += 1
    return added


async def _insert_new(conn: AsyncConnection, table: sa.Table, rows: list[dict[str, Any]]) -> list[tuple]:
    """Insert the rows, skipping any that conflict with an existing key; returns the keys inserted."""
    if not rows:
        return []
    insert = _INSERTS[conn.dialect.name]
    stmt = insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
    result = await conn.execute(stmt, rows)
    return [tuple(r) for r in result.all()]
