"""`DecisionService`: the application layer's one entry point, the same for HTTP, batch and simulation.

It wires the named pieces (decision path, budget reservations, recorder, summaries, responses, events,
outbound contacts) to the ports it is given, and answers readiness. It knows nothing of HTTP: commands in,
results and `service.errors` out.

>>> service = DecisionService(catalogue=..., scorer=..., cache=..., history=..., budgets=...,
...                           events=..., locks=...)  # doctest: +SKIP
>>> result = await service.decide(Decide("c-000042", "web"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from decisioning.catalogue import Catalogue
from decisioning.ports import (
    BudgetCounter,
    ContactHistory,
    CustomerCache,
    CustomerLock,
    EventRules,
    PrescoredFallback,
    Scorer,
)
from decisioning.records import HistoryEntry
from service.budgets import BudgetReservations
from service.commands import ApplyEvent, Decide, ReportSend, Respond
from service.contacts import OutboundContacts
from service.decisions import DecisionPath
from service.degraded import DegradedPath
from service.events import EventIntake
from service.metrics import Metrics
from service.recorder import DecisionRecorder
from service.responses import ResponseIntake
from service.results import ContactsResult, DecisionResult, EventResult, ResponseResult
from service.retries import RecordedDecisions
from service.summaries import Summaries


class DecisionService:
    """Everything one replica needs to decide, record and answer; built once (the app's lifespan, a batch
    job, the simulator)."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        scorer: Scorer,
        cache: CustomerCache,
        history: ContactHistory,
        budgets: BudgetCounter,
        events: EventRules,
        locks: CustomerLock,
        metrics: Metrics | None = None,
        max_offers_limit: int = 20,
        max_in_flight: int = 256,
        clock: Callable[[], float] = time.time,
        fallback: PrescoredFallback | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.scorer = scorer
        self.cache = cache
        self.history = history
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.summaries = Summaries(cache, history, self.metrics)
        self.budgets = BudgetReservations(catalogue, budgets, self.metrics)
        recorder = DecisionRecorder(history, self.summaries, self.budgets, self.metrics)
        self.decisions = DecisionPath(
            catalogue=catalogue,
            scorer=scorer,
            cache=cache,
            locks=locks,
            summaries=self.summaries,
            budgets=self.budgets,
            recorder=recorder,
            recorded=RecordedDecisions(history, catalogue),
            metrics=self.metrics,
            clock=clock,
            max_offers_limit=max_offers_limit,
            max_in_flight=max_in_flight,
            # When a store is down, decide from what needs none (see service/degraded.py).
            degraded=DegradedPath(catalogue, scorer, fallback, recorder, self.metrics),
        )
        self.responses = ResponseIntake(catalogue, history, self.summaries, self.budgets, self.metrics, clock)
        self.events = EventIntake(events, cache, self.metrics, clock)
        self.contacts = OutboundContacts(catalogue, history, cache, self.summaries, self.budgets, clock)

    async def decide(self, command: Decide) -> DecisionResult:
        """Decide for one contact, record the decision durably, then return it."""
        decision, replayed = await self.decisions.decide(command)
        return DecisionResult(decision, replayed)

    async def respond(self, command: Respond) -> ResponseResult:
        """Record a response, attributed to its decision (or to the latest contact of the offer)."""
        return await self.responses.respond(command)

    async def apply_event(self, command: ApplyEvent) -> EventResult:
        """Turn a customer event into real-time feature updates, applied atomically."""
        return await self.events.apply(command)

    async def record_contacts(self, sends: Sequence[ReportSend]) -> ContactsResult:
        """Record outbound sends so that inbound and outbound share one history and one set of caps."""
        return await self.contacts.record(sends)

    async def customer_history(self, customer_id: str, limit: int) -> list[HistoryEntry]:
        """The customer's unified history, newest first."""
        return await self.history.entries(customer_id, limit)

    async def readiness(self) -> dict[str, Any]:
        checks = {
            "cache": await _ping(self.cache.ping),
            "history": await _ping(self.history.ping),
            "catalogue": bool(self.catalogue.offers),
            "model": bool(self.scorer.version),
        }
        self.metrics.ready.set(1 if all(checks.values()) else 0)
        return checks

    async def close(self) -> None:
        await self.history.close()
        await self.cache.close()


async def _ping(check: Callable[[], Any]) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), timeout=1.0))
    except Exception:
        return False
