"""Monthly partitions of the PostgreSQL history (migration 0005): naming, creating them ahead, listing.

`contacts` and `responses` are `PARTITION BY RANGE` on their time column, one partition per calendar month
in UTC (`contacts_p2026_12` holds [2026-12-01, 2027-01-01)), plus a DEFAULT partition (`contacts_default`)
for rows of a month that has no partition of its own. Each has an unpartitioned key table
(`contact_keys`, `response_keys`) that keeps the natural key unique (see history.postgres_writer).

`ensure_partitions` creates the partitions of the current month and the next `ahead` months. A month
whose rows already sit in the DEFAULT partition is created as a plain table, filled with those rows, and
attached, in one transaction: attaching next to a DEFAULT that still held rows of the range would fail.
An advisory lock serialises replicas that start at the same moment.

>>> partition_name("contacts", datetime(2026, 12, 1, tzinfo=UTC))
'contacts_p2026_12'
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# partitioned table -> (its time column, its key table, the key table's key columns)
PARTITIONED = {
    "contacts": ("contacted_at", "contact_keys", ("contact_id", "offer_id")),
    "responses": ("responded_at", "response_keys", ("response_id",)),
}
_MONTHLY = re.compile(r"^(contacts|responses)_p(\d{4})_(\d{2})$")
_LOCK = 0x6E626F70  # advisory lock id of partition maintenance ("nbop")
# Attaching (and dropping) a partition locks the parent table: queued behind a long query, it would make
# every write queue behind it too. Better to fail and be run again.
LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, order=True)
class Partition:
    """One monthly partition: [month, next month) of `table`."""

    table: str
    month: datetime

    @property
    def name(self) -> str:
        return partition_name(self.table, self.month)

    @property
    def end(self) -> datetime:
        return add_months(self.month, 1)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


def is_partitioning_table(name: str | None) -> bool:
    """A table the partitioned layout adds beside `history.tables` (a month, a DEFAULT, a key table).

    >>> [is_partitioning_table(n) for n in ("contacts_p2026_12", "contacts_default", "contact_keys", "contacts")]
    [True, True, True, False]
    """
    keys = {key_table for _, key_table, _ in PARTITIONED.values()}
    defaults = {f"{table}_default" for table in PARTITIONED}
    return name is not None and (bool(_MONTHLY.match(name)) or name in keys or name in defaults)


def month_start(at: float | datetime) -> datetime:
    """The first instant (UTC) of the month holding `at` (epoch seconds or an aware datetime)."""
    moment = datetime.fromtimestamp(at, UTC) if isinstance(at, int | float) else at.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    """
    >>> add_months(datetime(2026, 12, 1, tzinfo=UTC), 2).date(), add_months(datetime(2026, 1, 1, tzinfo=UTC), -1).date()
    (datetime.date(2027, 2, 1), datetime.date(2025, 12, 1))
    """
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


async def is_partitioned(conn: AsyncConnection) -> bool:
    """Whether this database has the partitioned layout (PostgreSQL at migration 0005 or later)."""
    if conn.dialect.name != "postgresql":
        return False
    found = await conn.execute(sa.text("SELECT relkind::text FROM pg_class WHERE oid = to_regclass('contacts')"))
    return found.scalar() == "p"


async def monthly_partitions(conn: AsyncConnection) -> list[Partition]:
    """Every monthly partition attached to `contacts` and `responses`, oldest first."""
    rows = await conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN (to_regclass('contacts'), to_regclass('responses'))"
        )
    )
    found = []
    for (name,) in rows:
        match = _MONTHLY.match(name)
        if match:
            found.append(Partition(match[1], datetime(int(match[2]), int(match[3]), 1, tzinfo=UTC)))
    return sorted(found, key=lambda p: (p.month, p.table))


async def ensure_partitions(engine: AsyncEngine, *, ahead: int, now: float | None = None) -> list[Partition]:
    """Create the partitions of the current month and `ahead` more, where missing; returns those created.

    >>> await ensure_partitions(engine, ahead=3)   # doctest: +SKIP
    [Partition(table='contacts', month=...), ...]
    """
    if ahead < 0:
        raise ValueError(f"ahead must be 0 or more, not {ahead}")
    first = month_start(time.time() if now is None else now)
    wanted = [Partition(t, add_months(first, n)) for n in range(ahead + 1) for t in PARTITIONED]
    async with engine.begin() as conn:
        if not await is_partitioned(conn):
            raise RuntimeError("the history is not partitioned: PostgreSQL at migration 0005 is needed")
        await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK})"))
        await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        existing = set(await monthly_partitions(conn))
        created = [p for p in wanted if p not in existing]
        for partition in created:
            await _create(conn, partition)
    return created


async def _create(conn: AsyncConnection, p: Partition) -> None:
    """Create `p`, taking over the rows of its month that wait in the DEFAULT partition."""
    at = PARTITIONED[p.table][0]
    bounds = {"start": p.month, "end": p.end}
    in_month = f"{at} >= :start AND {at} < :end"
    await conn.execute(sa.text(f"CREATE TABLE {p.name} (LIKE {p.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    await conn.execute(sa.text(f"INSERT INTO {p.name} SELECT * FROM {p.table}_default WHERE {in_month}"), bounds)
    await conn.execute(sa.text(f"DELETE FROM {p.table}_default WHERE {in_month}"), bounds)
    # Bounds as literals: DDL takes no bind parameters. They are datetimes we formatted, never user input.
    await conn.execute(
        sa.text(
            f"ALTER TABLE {p.table} ATTACH PARTITION {p.name} "
            f"FOR VALUES FROM ('{p.month.isoformat()}') TO ('{p.end.isoformat()}')"
        )
    )
