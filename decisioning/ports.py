"""Ports: the interfaces the core and the service need from the outside world.

Adapters implement them: in process and SQLite for the embedded default, Redis and PostgreSQL in
production. The core itself only ever receives the data these return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from decisioning.catalogue import Offer
from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import HistorySummary
from decisioning.types import ContactEvent, Context, CustomerFeatures, FeatureValue


@dataclass(frozen=True, slots=True)
class WindowedCount:
    """The stored event times of a windowed count feature (`op: count` in events.yaml), oldest first.

    The feature's value is only known at decision time: the number of events in the `window` seconds
    (rolling) before `now`.

    >>> WindowedCount(30 * 86_400.0, (0.0, 20 * 86_400.0, 40 * 86_400.0)).count_at(45 * 86_400.0)
    2
    """

    window: float
    times: tuple[float, ...]

    def count_at(self, now: float) -> int:
        """How many events are less than `window` old at `now`.

        Events stamped after `now` count too: they are clock skew between replicas, not the future.
        """
        cutoff = now - self.window
        return sum(1 for t in self.times if t > cutoff)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """What one round trip to the customer cache returns.

    `features` is None for a customer the store has never seen. `feature_times` maps a feature name to
    when it was last written (epoch seconds); the key "*" holds the time of the last batch load.
    `summary` is None when the cache holds no history summary for the customer (the service then
    rebuilds it from the contact history and stores it back). `windowed` holds the event times of the
    windowed count features: `validate_features` turns them into counts at the decision's time, and they
    take the place of any value of the same name in `features`.
    """

    customer_id: str
    features: Mapping[str, FeatureValue] | None
    feature_times: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    summary: HistorySummary | None = None
    windowed: Mapping[str, WindowedCount] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True)
class FeatureUpdate:
    """An atomic change to one real-time feature, derived from a customer event.

    `op` is "incr" (add `value`), "set" (store `value`), "max" (keep the larger) or "count" (record the
    event's time, `value` unused: the feature reads as the number of events in the last `window` seconds
    at decision time, see `WindowedCount`). `window` is only for "count".

    >>> FeatureUpdate("transfer_out_competitor_30d", "count", None, window=30 * 86_400.0).op
    'count'
    """

    feature: str
    op: str
    value: FeatureValue
    window: float | None = None


class CustomerCache(Protocol):
    """Customer features and history summaries, read together in one round trip.

    >>> snapshot = await cache.load("c-000042")          # doctest: +SKIP
    >>> await cache.append_events("c-000042", events, now) # doctest: +SKIP
    """

    async def load(self, customer_id: str) -> CustomerSnapshot: ...

    async def put_features(
        self, rows: Sequence[tuple[str, Mapping[str, FeatureValue]]], at: float
    ) -> int: ...

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None: ...

    async def append_events(self, customer_id: str, events: Sequence[ContactEvent], now: float) -> None:
        """Add events to the summary if the cache holds one (a missing summary stays missing)."""
        ...

    async def remove_events(self, customer_id: str, events: Sequence[ContactEvent]) -> None:
        """Take these events out of the summary, each once (a decision that was not recorded)."""
        ...

    async def store_summary(self, customer_id: str, summary: HistorySummary) -> None: ...

    async def count(self) -> int:
        """How many customers have features in the cache."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class UnstorableRecord(ValueError):
    """A record the history cannot store (a value it cannot encode): only that write fails, never the
    writes it would have shared a transaction with."""


class ContactHistory(Protocol):
    """The unified contact history: append-only, durable once a call returns.

    >>> await history.record_decision(record)           # doctest: +SKIP
    >>> summary = await history.summary("c-000042", since=now - 400 * DAY)  # doctest: +SKIP
    """

    async def record_decision(self, decision: DecisionRecord) -> bool:
        """Durably store the decision and its presented offers (returns after commit); False when its
        `request_id` (or `decision_id`) was stored already, by another attempt of the same request."""
        ...

    async def record_contacts(self, contacts: Sequence[ContactRecord]) -> list[ContactRecord]:
        """Store outbound sends; contacts whose (contact_id, offer_id) already exist are skipped.

        Returns the contacts that were added (in the order given), so that a caller updates the
        summaries with exactly those.
        """
        ...

    async def record_response(self, response: ResponseRecord) -> bool:
        """Store a response; False when one with the same `response_id` exists already (idempotent)."""
        ...

    async def latest_contact(
        self, customer_id: str, offer_id: str, at_or_before: float | None = None
    ) -> ContactRecord | None:
        """The most recent contact (any channel, any outcome) of this offer to this customer, made at or
        before `at_or_before` when given (a response answers a contact made before it)."""
        ...

    async def find_contact(self, decision_id: str, offer_id: str) -> ContactRecord | None: ...

    async def decision_for_request(self, request_id: str) -> DecisionRecord | None:
        """The decision recorded for a request id, with its contacts, if any (idempotent retries)."""
        ...

    async def summary(self, customer_id: str, since: float) -> HistorySummary:
        """Rebuild a customer's summary from the stored history (events at or after `since`)."""
        ...

    async def entries(self, customer_id: str, limit: int = 100) -> list[HistoryEntry]:
        """The customer's history, newest first."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class BudgetCounter(Protocol):
    """Volume budgets shared by all replicas, reserved at decision time.

    >>> await budgets.reserve("budget:mortgage_call:2026-11-23", limit=500, ttl_seconds=2 * 86_400)  # doctest: +SKIP
    True
    """

    async def reserve(self, key: str, limit: int, ttl_seconds: float | None) -> bool:
        """Take one unit if fewer than `limit` were taken; atomic across replicas."""
        ...

    async def release(self, key: str) -> None:
        """Give back one unit (a reservation whose decision was not delivered)."""
        ...

    async def used(self, key: str) -> int: ...


class LockTimeout(RuntimeError):
    """The customer's lock stayed taken longer than the caller is willing to wait."""


class CustomerLock(Protocol):
    """Serialises one customer's decisions (within a replica, or across all of them).

    >>> async with locks.hold("c-000042"):  # doctest: +SKIP
    ...     ...  # load, decide, record, update the summary
    """

    def hold(self, customer_id: str) -> AbstractAsyncContextManager[None]: ...


class Held:
    """One customer held for one decision (`CustomerHolds`): its snapshot, loaded under the customer's lock,
    and the append that records the decision's events in the summary and releases the lock."""

    def __init__(
        self,
        snapshot: CustomerSnapshot,
        append_and_release: Callable[[Sequence[ContactEvent], float], Awaitable[None]],
        release: Callable[[], Awaitable[None]],
    ) -> None:
        self.snapshot = snapshot
        self._append_and_release = append_and_release
        self._release = release
        self.released = False

    async def append_and_release(self, events: Sequence[ContactEvent], now: float) -> None:
        """Append the events to the cached summary and release the hold (released even when it raises)."""
        self.released = True
        await self._append_and_release(events, now)

    async def release(self) -> None:
        """Release a hold that was not released by an append (a replay, an error); once."""
        if not self.released:
            self.released = True
            await self._release()


class CustomerHolds(Protocol):
    """Hold a customer for one decision: lock, load under the lock, append and release (on Redis, two
    round trips: coordination/holds.py). Leaving the block releases a hold the append did not.

    >>> async with holds.hold("c-000042") as held:    # doctest: +SKIP
    ...     decision = decide(held.snapshot, ...)
    ...     await held.append_and_release(events, now)  # the next decision for c-000042 may start
    """

    def hold(self, customer_id: str) -> AbstractAsyncContextManager[Held]: ...


class Scorer(Protocol):
    """Scores every candidate offer of one customer in one vectorised call.

    >>> scorer.score(customer, context, offers)   # doctest: +SKIP
    array([0.031, 0.12, ...])
    """

    version: str

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        """Response probabilities, one per offer, in the order given."""
        ...

    def for_customer(self, customer_id: str) -> Scorer:
        """The scorer that decides for this customer (champion or challenger); its `version` is logged."""
        ...

    # Optional: `concentrations(offers) -> list[float | None]`, the alpha + beta of the Beta posterior
    # behind each score (None where a model scored it). A scorer that has it (models.posterior.
    # LearningScorer) makes Thompson sampling draw those offers from their own posterior.


class EventError(ValueError):
    """An event that cannot be applied: unknown type, missing or invalid attribute."""


class EventRules(Protocol):
    """Which customer events update which real-time features (the catalogue's `events.yaml`).

    >>> rules.updates_for("card_declined", {"amount": 54.2}, at=now)   # doctest: +SKIP
    [FeatureUpdate(feature='card_declined_count', op='incr', value=1), ...]
    """

    types: tuple[str, ...]

    def knows(self, event_type: str) -> bool: ...

    def updates_for(self, event_type: str, attributes: Mapping[str, Any], at: float) -> list[FeatureUpdate]:
        """The feature updates the event implies; raises `EventError` for an event that cannot apply."""
        ...


class StoreUnavailable(RuntimeError):
    """A store did not answer in time, refused the connection, or its circuit breaker is open.

    Adapters raise it in place of their client's errors, so that the service can tell an outage from a
    bug without importing a store's client. `store` names which one ("redis", "history").

    >>> StoreUnavailable("redis", "circuit open").store
    'redis'
    """

    def __init__(self, store: str, message: str) -> None:
        super().__init__(f"{store} unavailable: {message}")
        self.store = store


@dataclass(frozen=True, slots=True)
class PrescoredOffer:
    """One offer the overnight batch ranked for a customer and channel, with its priority then."""

    offer_id: str
    priority: float


class PrescoredFallback(Protocol):
    """The batch's precomputed best offers per customer and channel: what a degraded decision shows when
    the live path (features, summary, budgets) is unreachable. Having none is normal (no batch yet, a new
    customer): the answer is then an empty list and the catalogue's default offers are used.

    >>> await fallback.top("c-000042", "web", 2)   # doctest: +SKIP
    [PrescoredOffer(offer_id='savings_plus', priority=3.2), PrescoredOffer(offer_id='card_cashback', priority=1.1)]
    """

    async def top(self, customer_id: str, channel: str, n: int) -> list[PrescoredOffer]:
        """At most `n` offers, best first; raises `StoreUnavailable` when the store cannot be read."""
        ...
