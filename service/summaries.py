"""The cached per-customer history summaries, kept in step with the contact history.

The hot path reads a summary from the cache; when the cache holds none (a cold or evicted key, a new
replica), it is rebuilt from the history and stored back. Appends are best effort: the history is the
record, and a failed append is repaired by the next rebuild.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from decisioning.ports import ContactHistory, CustomerCache, CustomerSnapshot, Held
from decisioning.summary import RETENTION_SECONDS, HistorySummary
from decisioning.types import ContactEvent
from service.metrics import Metrics

log = logging.getLogger("nbo.service")


class Summaries:
    """Read, append to and rebuild the cached summaries.

    >>> summary = await summaries.of(snapshot, now)   # doctest: +SKIP
    """

    def __init__(self, cache: CustomerCache, history: ContactHistory, metrics: Metrics) -> None:
        self.cache = cache
        self.history = history
        self.metrics = metrics

    async def of(self, snapshot: CustomerSnapshot, now: float) -> HistorySummary:
        """The snapshot's summary, or the one rebuilt from the history when the cache held none."""
        if snapshot.summary is not None:
            return snapshot.summary
        return await self.rebuild(snapshot.customer_id, now)

    async def rebuild(self, customer_id: str, now: float) -> HistorySummary:
        """Rebuild the summary from the history and store it in the cache."""
        summary = await self.history.summary(customer_id, since=now - RETENTION_SECONDS)
        await self.cache.store_summary(customer_id, summary)
        return summary

    async def append(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        """Add events to the cached summary; a failing cache leaves it lagging (the history has them)."""
        if not events:
            return
        try:
            await self.cache.append_events(customer_id, events, now)
        except Exception as err:
            self.metrics.errors.labels("summary_update").inc()
            log.warning("summary not updated", extra={"error": type(err).__name__})

    async def append_and_release(self, held: Held, events: Sequence[ContactEvent], now: float) -> None:
        """Add a decision's events to the held customer's summary and release it; as `append`, a failing
        cache leaves the summary lagging (and the lock to expire by itself)."""
        try:
            await held.append_and_release(events, now)
        except Exception as err:
            self.metrics.errors.labels("summary_update").inc()
            log.warning("summary not updated", extra={"error": type(err).__name__})

    async def remove(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        """Take an unmade decision's events out of the summary, leaving whatever was appended since; when
        the cache cannot, rebuild it from the history."""
        try:
            await self.cache.remove_events(customer_id, events)
        except Exception as err:
            log.warning("summary events not removed; rebuilding", extra={"error": type(err).__name__})
            await self.try_rebuild(customer_id, now)

    async def try_rebuild(self, customer_id: str, now: float) -> None:
        """Rebuild if the history answers; otherwise the summary keeps what it had (errs towards caps)."""
        try:
            await self.rebuild(customer_id, now)
        except Exception as err:
            log.warning("summary not rebuilt", extra={"error": type(err).__name__})
