"""In-process customer cache: the embedded default (one replica, no server).

Nothing here expires by time: a laptop or a single-process deployment reloads its features
at start-up, and the history summaries are rebuilt from the contact history when missing. Every method
completes without awaiting anything, so under asyncio each call is atomic, as the Redis adapters are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from decisioning.ports import CustomerSnapshot, FeatureUpdate, WindowedCount
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, FeatureValue
from features.updates import apply_update, check_updates, count_event


@dataclass
class _Entry:
    batch: Mapping[str, FeatureValue] = field(default_factory=dict)
    batch_time: float | None = None
    live: dict[str, FeatureValue] = field(default_factory=dict)  # real-time event features
    live_times: dict[str, float] = field(default_factory=dict)
    windowed: dict[str, WindowedCount] = field(default_factory=dict)  # the event times of `count` features


class InMemoryCustomerCache:
    """`CustomerCache` in dicts.

    >>> import asyncio
    >>> cache = InMemoryCustomerCache()
    >>> asyncio.run(cache.put_features([("c1", {"age": 41})], at=0.0))
    1
    >>> asyncio.run(cache.load("c1")).features
    mappingproxy({'age': 41})
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._summaries: dict[str, HistorySummary] = {}

    async def load(self, customer_id: str) -> CustomerSnapshot:
        entry = self._entries.get(customer_id)
        summary = self._summaries.get(customer_id)
        if entry is None:
            return CustomerSnapshot(customer_id, None, summary=summary)
        times = dict(entry.live_times)
        if entry.batch_time is not None:
            times["*"] = entry.batch_time
        values = MappingProxyType({**entry.batch, **entry.live})
        windowed = MappingProxyType(dict(entry.windowed))
        return CustomerSnapshot(customer_id, values, MappingProxyType(times), summary, windowed)

    async def put_features(self, rows: Sequence[tuple[str, Mapping[str, FeatureValue]]], at: float) -> int:
        """Replace the batch features of each row's customer; real-time features are kept."""
        for customer_id, values in rows:
            entry = self._entries.setdefault(customer_id, _Entry())
            entry.batch = dict(values)
            entry.batch_time = at
        return len(rows)

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None:
        check_updates(updates)  # all or nothing, as in Redis
        entry = self._entries.setdefault(customer_id, _Entry())
        for update in updates:
            name = update.feature
            if update.window is not None:  # a "count" (check_updates saw to that)
                entry.windowed[name] = count_event(entry.windowed.get(name), update.window, at)
            else:
                entry.live[name] = apply_update(entry.live.get(name), update)
            entry.live_times[name] = at

    async def append_events(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        """Add events to the summary if one is held (a missing summary stays missing)."""
        summary = self._summaries.get(customer_id)
        if summary is not None:
            self._summaries[customer_id] = summary.with_events(events, now=now)

    async def remove_events(self, customer_id: str, events: Sequence[ContactEvent]) -> None:
        """Take these events out of the summary (a decision that was not recorded), each once."""
        summary = self._summaries.get(customer_id)
        if summary is not None and events:
            self._summaries[customer_id] = HistorySummary(_without(summary.events, events))

    async def store_summary(self, customer_id: str, summary: HistorySummary) -> None:
        self._summaries[customer_id] = summary

    async def count(self) -> int:
        return len(self._entries)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def _without(events: Sequence[ContactEvent], removed: Sequence[ContactEvent]) -> tuple[ContactEvent, ...]:
    """`events` less one occurrence of each of `removed`, in order."""
    left = list(removed)
    kept = []
    for event in events:
        if event in left:
            left.remove(event)
        else:
            kept.append(event)
    return tuple(kept)
