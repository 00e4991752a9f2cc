"""The decision path: shed load, serialise the customer, load, decide within budgets, record, observe.

One path for every caller (HTTP, batch, simulator, console). A decision costs one round trip to hold the
customer (its lock, features and history summary), one vectorised scoring call, a budget reservation only
for chosen offers that have a budget, one round trip to append to the summary and release the customer,
and one durable write to the contact history. The decision is returned
only after it is recorded. A retried request id gets the recorded decision back, written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from decisioning.catalogue import Catalogue
from decisioning.engine import Decision, DecisionRequest, decide
from decisioning.ports import CustomerHolds, Held, LockTimeout, Scorer, StoreUnavailable
from decisioning.quality import validate_features
from decisioning.records import DecisionRecord
from decisioning.summary import HistorySummary
from decisioning.types import Context, CustomerFeatures
from service.budgets import BudgetReservations, Reservation
from service.commands import Decide
from service.degraded import DegradedPath
from service.errors import InvalidInput, Overloaded, Unavailable
from service.ids import random_decision_id
from service.metrics import Metrics, lap
from service.recorder import DecisionRecorder
from service.retries import RecordedDecisions
from service.summaries import Summaries
from service.validation import check_channel


class InFlightLimit:
    """Counts decisions in progress; beyond `limit` a new one is refused at once (queueing beyond
    capacity only turns every answer into a late one)."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.current = 0

    def __enter__(self) -> None:
        if self.current >= self.limit:
            self.metrics.errors.labels("overloaded").inc()
            raise Overloaded(f"overloaded: {self.current} decisions in progress; retry")
        self.current += 1

    def __exit__(self, *exc: object) -> None:
        self.current -= 1




class DecisionPath:
    """Makes, records and returns decisions; see the module docstring for the steps."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        scorer: Scorer,
        holds: CustomerHolds,
        summaries: Summaries,
        budgets: BudgetReservations,
        recorder: DecisionRecorder,
        recorded: RecordedDecisions,
        metrics: Metrics,
        clock: Callable[[], float],
        max_offers_limit: int = 20,
        max_in_flight: int = 256,
        in_flight: InFlightLimit | None = None,
        degraded: DegradedPath | None = None,
        decision_ids: Callable[[], str] = random_decision_id,
    ) -> None:
        self.degraded = degraded
        self.decision_ids = decision_ids
        self.catalogue = catalogue
        self.scorer = scorer
        self.holds = holds
        self.summaries = summaries
        self.budgets = budgets
        self.recorder = recorder
        self.recorded = recorded
        self.metrics = metrics
        self.clock = clock
        self.max_offers_limit = max_offers_limit
        # Given when the path is rebuilt by a reload: the decisions in flight on the old path still count.
        self.in_flight = in_flight or InFlightLimit(max_in_flight, metrics)

    async def decide(self, command: Decide) -> tuple[Decision, bool]:
        """Decide for one contact and record it; (decision, replayed). `replayed`: the request id had been
        decided already and this is that decision, as recorded."""
        self._check(command)
        with self.in_flight:
            start = time.perf_counter()
            # One customer's decisions are serialised (across replicas with Redis), so two concurrent
            # requests cannot both slip under a cap: the second one reads the first one's presentations.
            try:
                async with self.holds.hold(command.customer_id) as held:
                    lap("lock_and_load")
                    decision, replayed = await self._decide_held(command, held)
                lap("unlock")
            except LockTimeout as err:
                self.metrics.errors.labels("customer_lock").inc()
                raise Unavailable("too many concurrent decisions for this customer; retry") from err
            except StoreUnavailable as err:
                # Raised only before anything was recorded (the recorder turns its own failures into
                # Unavailable, and cleanups never raise it): deciding again, degraded, cannot double a decision.
                decision, replayed = await self._decide_degraded(command, err)
            if not replayed:
                self._observe(decision, time.perf_counter() - start)
                lap("observe")
            return decision, replayed

    async def _decide_held(self, command: Decide, held: Held) -> tuple[Decision, bool]:
        # Checked under the customer's lock: a retry that comes after its first attempt was committed sees
        # it; one racing the first attempt's commit decides, and the history refuses its second record of
        # the request id (`stored` False below): it is undone and answers the first decision.
        if command.request_id and (earlier := await self._find(command.request_id)):
            return self._replay(command, earlier), True
        lap("request_id")
        now = self.clock()
        scorer = self.scorer.for_customer(command.customer_id)  # champion or challenger, by a stable hash
        coarse = self._stage_timer(command.channel, scorer.version)
        snapshot = held.snapshot
        summary = await self.summaries.of(snapshot, now)
        customer = validate_features(self.catalogue.features, command.customer_id, snapshot, now)
        lap("features")
        coarse("load")
        request = DecisionRequest(
            self.decision_ids(), customer, _context(command, now), command.max_offers, command.explain
        )
        decision, reservation = await self._decide_within_budgets(request, summary, scorer)
        coarse("decide")
        stored = await self.recorder.record(decision, reservation, command.request_id, held)
        coarse("record")
        if not stored:  # another attempt of this request was stored first (its lock lease ran out)
            earlier = await self._find(command.request_id) if command.request_id else None
            if earlier is None:
                raise Unavailable("the decision was not recorded; retry")
            return self._replay(command, earlier), True
        self._count_data_quality(command.channel, customer)
        return decision, False

    async def _decide_degraded(self, command: Decide, cause: StoreUnavailable) -> tuple[Decision, bool]:
        """The degraded decision (see service/degraded.py), without the customer's lock."""
        if self.degraded is None:
            raise Unavailable(str(cause)) from cause
        if command.request_id and (earlier := await self._find(command.request_id)):
            return self._replay(command, earlier), True
        now = self.clock()
        reason = f"{cause.store}_unavailable"
        decision, stored = await self.degraded.decide(command, now, _context(command, now), reason)
        if not stored:
            earlier = await self._find(command.request_id) if command.request_id else None
            if earlier is None:
                raise Unavailable("the decision was not recorded; retry")
            return self._replay(command, earlier), True
        return decision, False

    async def _find(self, request_id: str) -> DecisionRecord | None:
        # A request id's earlier decision cannot be looked up: deciding anew could answer one request twice.
        try:
            return await self.recorded.find(request_id)
        except StoreUnavailable as err:
            raise Unavailable("the contact history cannot be read to check the request id; retry") from err

    async def _decide_within_budgets(
        self, request: DecisionRequest, summary: HistorySummary, scorer: Scorer
    ) -> tuple[Decision, Reservation]:
        exhausted = set(self.budgets.known_exhausted(request.context.now))
        # Every failed round marks at least one more offer exhausted, so this ends within len(offers) + 1.
        for _ in range(len(self.catalogue.offers) + 1):
            decision = decide(
                self.catalogue, request, summary, scorer, exhausted_budgets=frozenset(exhausted), laps=lap
            )
            reservation = await self.budgets.reserve(decision)
            lap("budgets")
            if reservation.ok:
                return decision, reservation
            exhausted |= reservation.exhausted
        raise Unavailable("volume budgets could not be reserved")

    def _replay(self, command: Decide, record: DecisionRecord) -> Decision:
        if record.customer_id != command.customer_id or record.channel != command.channel:
            raise InvalidInput("request_id", f"request id already used for decision {record.decision_id}")
        return self.recorded.as_decision(record)

    def _check(self, command: Decide) -> None:
        check_channel(self.catalogue, command.channel, "channel")
        if command.max_offers > self.max_offers_limit:
            raise InvalidInput("max_offers", f"at most {self.max_offers_limit} offers per decision")

    def _stage_timer(self, channel: str, version: str) -> Callable[[str], None]:
        last = [time.perf_counter()]

        def lap(stage: str) -> None:
            now = time.perf_counter()
            self.metrics.hot.stage_seconds(stage, channel, version).observe(now - last[0])
            last[0] = now

        return lap

    def _observe(self, decision: Decision, seconds: float) -> None:
        m, channel = self.metrics.hot, decision.context.channel
        m.decision_seconds(channel).observe(seconds)
        m.decisions(channel, "offers" if decision.offers else "empty").inc()
        for p in decision.offers:
            m.presented(p.offer.id, channel).inc()
        for s in decision.suppressions:
            m.suppressions(s.policy_id).inc()

    def _count_data_quality(self, channel: str, customer: CustomerFeatures) -> None:
        if not customer.known:
            self.metrics.unknown_customers.labels(channel).inc()
        if customer.defaulted:
            self.metrics.defaulted.labels(channel).inc(len(customer.defaulted))
        if customer.stale:
            self.metrics.stale.labels(channel).inc(len(customer.stale))


def _context(command: Decide, now: float) -> Context:
    return Context(
        channel=command.channel,
        now=now,
        placement=command.placement,
        intent=command.intent,
        attributes=dict(command.context),
    )
