"""Fakes of the ports, a few lines each, for unit tests of the application layer.

Each subclasses nothing and implements just the port's methods (the ports are Protocols); a `fail` flag
or set makes the next calls raise, as a store that is down would.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from decisioning.ports import CustomerSnapshot, EventError, FeatureUpdate, LockTimeout, UnstorableRecord
from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, FeatureValue


class StoreDown(OSError):
    pass


class FakeHistory:
    """`ContactHistory` in lists; `down` makes writes fail, `unstorable` refuses those customers' decisions."""

    def __init__(self) -> None:
        self.decisions: dict[str, DecisionRecord] = {}
        self.contacts: list[ContactRecord] = []
        self.responses: dict[str, ResponseRecord] = {}
        self.down = False
        self.unstorable: set[str] = set()
        self.summary_calls = 0

    async def record_decision(self, decision: DecisionRecord) -> bool:
        if self.down:
            raise StoreDown("history down")
        if decision.customer_id in self.unstorable:
            raise UnstorableRecord("context value cannot be encoded")
        if any(d.request_id and d.request_id == decision.request_id for d in self.decisions.values()):
            return False
        self.decisions[decision.decision_id] = decision
        self.contacts.extend(decision.contacts)
        return True

    async def record_contacts(self, contacts: Sequence[ContactRecord]) -> list[ContactRecord]:
        known = {(c.contact_id, c.offer_id) for c in self.contacts}
        added = []
        for c in contacts:
            if (c.contact_id, c.offer_id) not in known:
                known.add((c.contact_id, c.offer_id))
                added.append(c)
        self.contacts.extend(added)
        return added

    async def record_response(self, response: ResponseRecord) -> bool:
        if response.response_id in self.responses:
            return False
        self.responses[response.response_id] = response
        return True

    async def latest_contact(self, customer_id: str, offer_id: str, at_or_before: float | None = None):
        mine = [c for c in self.contacts if (c.customer_id, c.offer_id) == (customer_id, offer_id)]
        found = [c for c in mine if at_or_before is None or c.at <= at_or_before]
        return max(found, key=lambda c: c.at, default=None)

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None:
        return next((c for c in self.contacts if (c.contact_id, c.offer_id) == (decision_id, offer_id)), None)

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        return next((d for d in self.decisions.values() if d.request_id == request_id), None)

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        self.summary_calls += 1
        events = [c.event() for c in self.contacts if c.customer_id == customer_id and c.at >= since]
        events += [r.event(r.group or "") for r in self.responses.values() if r.customer_id == customer_id]
        return HistorySummary().with_events(sorted(events, key=lambda e: e.at))

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        return []

    async def ping(self) -> bool:
        return not self.down

    async def close(self) -> None:
        return None


class FakeCache:
    """`CustomerCache` in dicts; `appends_fail` makes summary appends raise."""

    def __init__(self, features: Mapping[str, Mapping[str, FeatureValue]] | None = None) -> None:
        self.features = {k: dict(v) for k, v in (features or {}).items()}
        self.summaries: dict[str, HistorySummary] = {}
        self.updates: list[tuple[str, FeatureUpdate]] = []
        self.appends_fail = False

    async def load(self, customer_id: str) -> CustomerSnapshot:
        return CustomerSnapshot(customer_id, self.features.get(customer_id), {}, self.summaries.get(customer_id))

    async def put_features(self, rows: Sequence[tuple[str, Mapping[str, FeatureValue]]], at: float) -> int:
        self.features.update({cid: dict(values) for cid, values in rows})
        return len(rows)

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None:
        self.updates += [(customer_id, u) for u in updates]

    async def append_events(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        if self.appends_fail:
            raise StoreDown("cache down")
        if customer_id in self.summaries:
            self.summaries[customer_id] = self.summaries[customer_id].with_events(events)

    async def remove_events(self, customer_id: str, events: Sequence[ContactEvent]) -> None:
        if customer_id in self.summaries:
            kept = [e for e in self.summaries[customer_id].events if e not in events]
            self.summaries[customer_id] = HistorySummary(tuple(kept))

    async def store_summary(self, customer_id: str, summary: HistorySummary) -> None:
        self.summaries[customer_id] = summary

    async def count(self) -> int:
        return len(self.features)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class FakeBudgets:
    """`BudgetCounter` in a dict of counts."""

    def __init__(self) -> None:
        self.used: dict[str, int] = {}

    async def reserve(self, key: str, limit: int, ttl_seconds: float | None) -> bool:
        if self.used.get(key, 0) >= limit:
            return False
        self.used[key] = self.used.get(key, 0) + 1
        return True

    async def release(self, key: str) -> None:
        self.used[key] = max(0, self.used.get(key, 0) - 1)

    async def used_units(self, key: str) -> int:
        return self.used.get(key, 0)


class FakeLocks:
    """`CustomerLock` that records who held it; `busy` customers time out."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.busy: set[str] = set()

    @contextlib.asynccontextmanager
    async def hold(self, customer_id: str) -> AsyncIterator[None]:
        if customer_id in self.busy:
            raise LockTimeout(customer_id)
        self.held.append(customer_id)
        yield


class FakeEventRules:
    """`EventRules`: `card_declined` increments a counter; `amount` must be a number."""

    types = ("card_declined",)

    def knows(self, event_type: str) -> bool:
        return event_type in self.types

    def updates_for(self, event_type: str, attributes: Mapping[str, Any], at: float) -> list[FeatureUpdate]:
        if not isinstance(attributes.get("amount", 0), int | float):
            raise EventError("card_declined: attribute 'amount' is invalid")
        return [FeatureUpdate("card_declined_count", "incr", 1)]

