"""What one group-commit transaction writes: decisions, contacts and responses of many callers at once.

Each table gets one bulk `INSERT ... ON CONFLICT DO NOTHING` of all the batch's rows, which reports the
keys it inserted. Those keys say which rows were new, which is how each caller learns what it added:
- a decision whose `decision_id` or `request_id` exists already is skipped, and so are its contacts;
- a contact whose (contact_id, offer_id) exists is skipped and not reported as added;
- a response whose `response_id` exists is skipped and reported as a duplicate (False).

`batch_plan` is that logic, free of I/O: a generator that yields (table, rows) to insert and is sent back
the keys inserted. Two drivers run it: `run_plan` (async, SQLAlchemy on PostgreSQL) and `run_plan_sync`
(in the SQLite writer's thread, see `history.sqlite_writer`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import sqlalchemy as sa

from history.tables import contacts, decisions, responses
from history.writer import Job

DECISION = "decision"  # payload: (decision row, [contact rows])
CONTACTS = "contacts"  # payload: [contact rows]
RESPONSE = "response"  # payload: response row

Rows = list[dict[str, Any]]
Keys = set[tuple[Any, ...]]
Plan = Generator[tuple[sa.Table, Rows], Keys, list[Any]]


def batch_plan(jobs: Sequence[Job]) -> Plan:
    """Yield (table, rows) to insert, in order; receive the keys inserted; return one result per job.

    A decision's result is whether it was stored, a contacts job's is one flag per row (whether that row
    was added), a response's is whether it was new.
    """
    new_decisions = yield decisions, [job.payload[0] for job in jobs if job.kind == DECISION]
    decision_ids = {key[0] for key in new_decisions}
    new_contacts = yield contacts, [row for job in jobs for row in _contact_rows(job, decision_ids)]
    new_responses = yield responses, [job.payload for job in jobs if job.kind == RESPONSE]
    return [_result(job, decision_ids, new_contacts, new_responses) for job in jobs]


async def run_plan(plan: Plan, insert: Callable[[sa.Table, Rows], Awaitable[Keys]]) -> list[Any]:
    """Drive `plan` with an async `insert(table, rows) -> keys inserted`."""
    try:
        step = next(plan)
        while True:
            step = plan.send(await insert(*step) if step[1] else set())
    except StopIteration as done:
        return done.value


def run_plan_sync(plan: Plan, insert: Callable[[sa.Table, Rows], Keys]) -> list[Any]:
    """Drive `plan` with a blocking `insert(table, rows) -> keys inserted`."""
    try:
        step = next(plan)
        while True:
            step = plan.send(insert(*step) if step[1] else set())
    except StopIteration as done:
        return done.value


def _contact_rows(job: Job, new_decisions: set[str]) -> Rows:
    if job.kind == CONTACTS:
        return job.payload
    if job.kind == DECISION and job.payload[0]["decision_id"] in new_decisions:
        return job.payload[1]
    return []


def _result(job: Job, new_decisions: set[str], new_contacts: Keys, new_responses: Keys) -> Any:
    if job.kind == DECISION:
        return job.payload[0]["decision_id"] in new_decisions
    if job.kind == CONTACTS:
        return _claim(new_contacts, [(row["contact_id"], row["offer_id"]) for row in job.payload])
    if job.kind == RESPONSE:
        return _claim(new_responses, [(job.payload["response_id"],)]) == [True]
    return None


def _claim(new: Keys, keys: list[tuple[Any, ...]]) -> list[bool]:
    """Which of `keys` were inserted. Each inserted key is credited once, so a row sent twice (by one
    caller or by two callers of the same batch) counts for the first only."""
    added = []
    for key in keys:
        added.append(key in new)
        new.discard(key)
    return added
