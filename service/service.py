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
from dataclasses import dataclass
from typing import Any

from decisioning.catalogue import Catalogue
from decisioning.ports import (
    BudgetCounter,
    ContactHistory,
    CustomerCache,
    CustomerHolds,
    CustomerLock,
    EventRules,
    PrescoredFallback,
    Scorer,
)
from decisioning.records import HistoryEntry
from service.budgets import BudgetReservations
from service.commands import ApplyEvent, Decide, ReportSend, Respond
from service.contacts import OutboundContacts
from service.decisions import DecisionPath, InFlightLimit, random_decision_id
from service.degraded import DegradedPath
from service.errors import InvalidInput
from service.events import EventIntake
from service.holds import LockThenLoad
from service.metrics import Metrics
from service.recorder import DecisionRecorder
from service.responses import ResponseIntake
from service.results import ContactsResult, DecisionResult, EventResult, ResponseResult
from service.retries import RecordedDecisions
from service.summaries import Summaries
from service.triggers import TriggerFiring, TriggerOutlets


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Everything that holds the catalogue, the model or the event rules: swapped as one by `reload`."""

    catalogue: Catalogue
    scorer: Scorer
    event_rules: EventRules
    budgets: BudgetReservations
    decisions: DecisionPath
    responses: ResponseIntake
    events: EventIntake
    contacts: OutboundContacts


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
        decision_ids: Callable[[], str] = random_decision_id,
        fallback: PrescoredFallback | None = None,
        history_reads: ContactHistory | None = None,
        holds: CustomerHolds | None = None,
        triggers: TriggerOutlets | None = None,  # without them, the catalogue's triggers do not fire
    ) -> None:
        self.cache = cache
        self.history = history
        # Reads that may lag (the customer's listing) can go to a replica; the policies' reads cannot.
        self._history_reads = history_reads
        self.metrics = metrics or Metrics()
        self.clock = clock
        self._decision_ids = decision_ids
        # Shared by every generation of the pieces below: a reload keeps the stores, the locks, the
        # summaries and the count of decisions in flight.
        self._budget_counter = budgets
        self._locks = locks
        # How a decision holds its customer: given by the Redis wiring (two round trips), else composed.
        self._holds = holds or LockThenLoad(locks, cache)
        self._max_offers_limit = max_offers_limit
        self._in_flight = InFlightLimit(max_in_flight, self.metrics)
        self._fallback = fallback
        self._trigger_outlets = triggers
        self.summaries = Summaries(cache, history, self.metrics)
        self._pieces = self._build(catalogue, scorer, events)

    def reload(
        self, *, catalogue: Catalogue | None = None, scorer: Scorer | None = None, events: EventRules | None = None
    ) -> None:
        """Serve a new catalogue, model or event rules (those not given stay): the pieces that hold them
        are rebuilt, then swapped in one assignment. A request in flight finishes on the pieces it
        started with; the next one sees the new ones. Loading and validating is the caller's job.

        >>> service.reload(scorer=registry.scorer("nbo"))  # doctest: +SKIP
        """
        current = self._pieces
        self._pieces = self._build(
            catalogue or current.catalogue, scorer or current.scorer, events or current.event_rules
        )

    def _build(self, catalogue: Catalogue, scorer: Scorer, events: EventRules) -> _Pieces:
        budgets = BudgetReservations(catalogue, self._budget_counter, self.metrics)
        recorder = DecisionRecorder(self.history, self.summaries, budgets, self.metrics)
        decisions = DecisionPath(
            catalogue=catalogue,
            scorer=scorer,
            holds=self._holds,
            summaries=self.summaries,
            budgets=budgets,
            recorder=recorder,
            recorded=RecordedDecisions(self.history, catalogue),
            metrics=self.metrics,
            clock=self.clock,
            decision_ids=self._decision_ids,
            max_offers_limit=self._max_offers_limit,
            in_flight=self._in_flight,
            # When a store is down, decide from what needs none (see service/degraded.py).
            degraded=DegradedPath(catalogue, scorer, self._fallback, recorder, self.metrics),
        )
        return _Pieces(
            catalogue,
            scorer,
            events,
            budgets,
            decisions,
            ResponseIntake(catalogue, self.history, self.summaries, budgets, self.metrics, self.clock),
            EventIntake(events, self.cache, self.metrics, self.clock, self._firing(catalogue, decisions)),
            OutboundContacts(catalogue, self.history, self.cache, self.summaries, budgets, self.clock),
        )

    def _firing(self, catalogue: Catalogue, decisions: DecisionPath) -> TriggerFiring | None:
        if self._trigger_outlets is None or not catalogue.triggers:
            return None
        return TriggerFiring(catalogue, decisions, self.cache, self._trigger_outlets, self.metrics, self.clock)

    # The current generation's pieces (read once per request: see `reload`).
    @property
    def catalogue(self) -> Catalogue:
        return self._pieces.catalogue

    @property
    def scorer(self) -> Scorer:
        return self._pieces.scorer

    @property
    def event_rules(self) -> EventRules:
        return self._pieces.event_rules

    @property
    def budgets(self) -> BudgetReservations:
        return self._pieces.budgets

    @property
    def decisions(self) -> DecisionPath:
        return self._pieces.decisions

    @property
    def responses(self) -> ResponseIntake:
        return self._pieces.responses

    @property
    def events(self) -> EventIntake:
        return self._pieces.events

    @property
    def contacts(self) -> OutboundContacts:
        return self._pieces.contacts

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

    async def trigger_deliveries(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """The triggered deliveries published after the id `after`, oldest first (none without outlets)."""
        if self._trigger_outlets is None:
            return []
        try:
            return await self._trigger_outlets.outlet.read(after, limit)
        except ValueError as err:
            raise InvalidInput("after", str(err)) from err

    async def customer_history(self, customer_id: str, limit: int) -> list[HistoryEntry]:
        """The customer's unified history, newest first."""
        return await (self._history_reads or self.history).entries(customer_id, limit)

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
        if self._trigger_outlets is not None:
            await self._trigger_outlets.outlet.close()
        await self.history.close()
        if self._history_reads is not None:
            await self._history_reads.close()
        await self.cache.close()


async def _ping(check: Callable[[], Any]) -> bool:
    try:
        return bool(await asyncio.wait_for(check(), timeout=1.0))
    except Exception:
        return False
