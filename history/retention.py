"""History retention: remove whole months older than N months, never what the contact policies still read.

How much history the catalogue needs (`needed_days`), and why it is this sum:
- a policy with window X and effect "suppress D days" can, today, still be suppressing because of a
  threshold reached D days ago over the X days before that: it reads X + D days back (a calendar window
  counts as its longest: a day, 7 days, 31 days; a policy without `suppress_days` reads its window only);
- a presentation counts as `ignored` once its offer's response window W has passed with no response, so a
  policy counting `ignored` events up to X + D days old reads presentations up to X + D + W days old.
So `needed_days` = max over policies (X + D) + max over offers (W, or the catalogue's default W). Retention
refuses any `--months` whose cutoff (the first day of the month N months before the current one, UTC)
falls after now - needed_days, and names the policy that needs more.

PostgreSQL (partitioned, migration 0005): the monthly partitions that end at or before the cutoff are
dropped (after being written to Parquet with `archive`), with their keys in the key tables, and the
DEFAULT partition's rows before the cutoff are deleted. SQLite (one table each): the rows before the
cutoff are deleted (archived month by month first). Decisions are kept (they are not partitioned yet).

>>> plan = plan_retention(catalogue, months=14, now=time.time())   # doctest: +SKIP
>>> await retain(engine, plan, archive=Path("archive"))            # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from decisioning.catalogue import CalendarUnit, Catalogue, ContactPolicy, WindowKind
from decisioning.types import DAY
from history.partitions import (
    LOCK_TIMEOUT,
    PARTITIONED,
    Partition,
    add_months,
    is_partitioned,
    month_start,
    monthly_partitions,
)
from history.tables import contacts, responses

_CALENDAR_DAYS = {CalendarUnit.DAY: 1.0, CalendarUnit.WEEK: 7.0, CalendarUnit.MONTH: 31.0}
_TABLES = {"contacts": contacts, "responses": responses}


class RetentionRefused(ValueError):
    """The requested retention would remove history that a contact policy still reads."""


@dataclass(frozen=True)
class RetentionPlan:
    """What `retain` removes: every row before `cutoff`; `needed_days` and `reason` say why not more."""

    cutoff: datetime
    needed_days: float
    reason: str


@dataclass
class RetentionReport:
    dropped: list[str] = field(default_factory=list)  # partitions dropped (PostgreSQL)
    deleted_rows: dict[str, int] = field(default_factory=dict)  # rows deleted, by table
    archived: list[Path] = field(default_factory=list)


def policy_days(policy: ContactPolicy) -> float:
    """How far back one policy reads: its window plus its suppression."""
    window = policy.window
    if window.kind is WindowKind.CALENDAR:
        days = _CALENDAR_DAYS[window.unit or CalendarUnit.MONTH]
    else:
        days = (window.seconds or 0.0) / DAY
    return days + (policy.suppress_days or 0.0)


def needed_history(catalogue: Catalogue) -> tuple[float, str]:
    """The days of history the catalogue reads (see the module doc), and what sets it."""
    longest = max(catalogue.policies, key=policy_days, default=None)
    policy = policy_days(longest) if longest else 0.0
    windows = [catalogue.response_window_seconds(o.id) or 0.0 for o in catalogue.offers]
    response = max(windows, default=0.0) / DAY
    name = f"policy '{longest.id}'" if longest else "no policy"
    return policy + response, f"{name} reads {policy:g} days, plus a response window of {response:g} days"


def plan_retention(catalogue: Catalogue, *, months: int, now: float) -> RetentionPlan:
    """The cutoff for keeping `months` whole months before the current one; refused when too short."""
    if months < 1:
        raise RetentionRefused(f"--months must be at least 1, not {months}")
    current = month_start(now)
    cutoff = add_months(current, -months)
    needed, reason = needed_history(catalogue)
    oldest_needed = datetime.fromtimestamp(now - needed * DAY, UTC)
    if cutoff > oldest_needed:
        least = next(m for m in range(months, months + 10_000) if add_months(current, -m) <= oldest_needed)
        raise RetentionRefused(
            f"--months {months} would delete history from before {cutoff:%Y-%m-%d}, but the catalogue needs "
            f"{math.ceil(needed)} days (since {oldest_needed:%Y-%m-%d}): {reason}; keep at least --months {least}"
        )
    return RetentionPlan(cutoff, needed, reason)


async def retain(engine: AsyncEngine, plan: RetentionPlan, *, archive: Path | None = None) -> RetentionReport:
    """Remove the history before `plan.cutoff` (archived to Parquet in `archive` first, when given)."""
    report = RetentionReport()
    async with engine.connect() as conn:
        partitioned = await is_partitioned(conn)
        old = [p for p in await monthly_partitions(conn) if p.end <= plan.cutoff] if partitioned else []
    for partition in old:
        await _drop_partition(engine, partition, archive, report)
    async with engine.begin() as conn:
        if partitioned:
            await _delete_from_defaults(conn, plan.cutoff, archive, report)
        else:
            await _delete_rows(conn, plan.cutoff, archive, report)
    return report


async def _drop_partition(
    engine: AsyncEngine, partition: Partition, archive: Path | None, report: RetentionReport
) -> None:
    """Archive one month (a plain read), then drop it in a short transaction of its own: DROP locks the
    parent table, and every write of the service waits while it is held."""
    if archive is not None:
        async with engine.connect() as conn:
            query = sa.select(_named(partition.table, partition.name))
            await _archive(conn, query, archive / f"{partition.name}.parquet", report)
    at, key_table, _ = PARTITIONED[partition.table]
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        await conn.execute(sa.text(f"DROP TABLE {partition.name}"))
        await conn.execute(sa.text(f"DELETE FROM {key_table} WHERE {at} < :end"), {"end": partition.end})
    report.dropped.append(partition.name)


async def _delete_from_defaults(
    conn: AsyncConnection, cutoff: datetime, archive: Path | None, report: RetentionReport
) -> None:
    """Rows of months without a partition (late or backfilled) wait in DEFAULT: deleted row by row."""
    for table, (at, key_table, _) in PARTITIONED.items():
        await _delete_before(conn, table, _named(table, f"{table}_default"), at, cutoff, archive, report)
        await conn.execute(sa.text(f"DELETE FROM {key_table} WHERE {at} < :cutoff"), {"cutoff": cutoff})


async def _delete_rows(conn: AsyncConnection, cutoff: datetime, archive: Path | None, report: RetentionReport) -> None:
    for table, (at, _, _) in PARTITIONED.items():
        await _delete_before(conn, table, _named(table, table), at, cutoff, archive, report)


def _named(table: str, name: str) -> sa.TableClause:
    """`table`'s columns, with their types (times as EpochSeconds), on the table `name` (a partition)."""
    return sa.table(name, *(sa.column(c.name, c.type) for c in _TABLES[table].columns))


async def _delete_before(
    conn: AsyncConnection,
    name: str,
    target: sa.TableClause,
    at: str,
    cutoff: datetime,
    archive: Path | None,
    report: RetentionReport,
) -> None:
    """DELETE the rows of `target` before `cutoff`, archived month by month first when asked."""
    column = target.c[at]
    if archive is not None:
        for month in await _months_before(conn, column, cutoff):
            window = (column >= month.month.timestamp()) & (column < min(month.end, cutoff).timestamp())
            query = sa.select(target).where(window)
            await _archive(conn, query, archive / f"{name}_{month.month:%Y_%m}.parquet", report)
    # The time bound through the column's own type (EpochSeconds), so SQLite compares its text alike.
    deleted = await conn.execute(sa.delete(target).where(column < cutoff.timestamp()))
    report.deleted_rows[name] = report.deleted_rows.get(name, 0) + deleted.rowcount


async def _months_before(conn: AsyncConnection, column: sa.ColumnClause[Any], cutoff: datetime) -> list[Partition]:
    oldest = (await conn.execute(sa.select(sa.func.min(column)))).scalar()
    if oldest is None:
        return []
    months, month = [], month_start(oldest)
    while month < cutoff:
        months.append(Partition("", month))
        month = add_months(month, 1)
    return months


async def _archive(conn: AsyncConnection, query: sa.Select[Any], path: Path, report: RetentionReport) -> None:
    """Write the rows of `query` to a Parquet file (complete, or not at all) before they are removed; no
    file for no rows."""
    result = await conn.execute(query)
    names = list(result.keys())
    rows = [dict(zip(names, row, strict=True)) for row in result]
    if not rows:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(pa.Table.from_pylist(rows), partial)
    if pq.ParquetFile(partial).metadata.num_rows != len(rows):
        raise OSError(f"the archive {partial} does not hold the {len(rows)} rows written")
    partial.replace(path)
    report.archived.append(path)
