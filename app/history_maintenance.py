"""`nbo history partitions` and `nbo history retain`: history maintenance on the settings' database."""

from __future__ import annotations

import time
from pathlib import Path

from app.settings import Settings, redact_url
from history.database import make_engine
from history.partitions import ensure_partitions
from history.retention import plan_retention, retain
from policies.loader import load_catalogue


async def create_partitions(settings: Settings, ahead: int) -> list[str]:
    """Create this month's partitions and `ahead` more (PostgreSQL); one line per partition created."""
    if not settings.database_url.startswith("postgresql"):
        return [f"{redact_url(settings.database_url)}: not PostgreSQL, one table each (nothing to partition)"]
    engine = make_engine(settings.database_url)
    try:
        created = await ensure_partitions(engine, ahead=ahead)
    finally:
        await engine.dispose()
    return [f"created {p.name}" for p in created] or [f"partitions present through {ahead} months ahead"]


async def retain_history(settings: Settings, months: int, archive: Path | None) -> list[str]:
    """Remove the history older than `months` whole months; raises RetentionRefused when too short."""
    plan = plan_retention(load_catalogue(settings.catalogue_dir), months=months, now=time.time())
    engine = make_engine(settings.database_url)
    try:
        report = await retain(engine, plan, archive=archive)
    finally:
        await engine.dispose()
    lines = [f"removing history before {plan.cutoff:%Y-%m-%d} (the catalogue reads {plan.needed_days:g} days)"]
    lines += [f"dropped {name}" for name in report.dropped]
    lines += [f"deleted {n} rows from {table}" for table, n in report.deleted_rows.items() if n]
    lines += [f"archived {path}" for path in report.archived]
    return lines
