"""The decision service: wires the pure core to the stores for each API call.

A decision costs one round trip to the customer cache (features + history summary), one vectorised scoring
call, a budget reservation only for chosen offers that have a budget, and one durable write to the contact
history (group-committed with concurrent decisions). The decision is returned only after it is recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.errors import InvalidField, NotFound, Unavailable
from app.metrics import Metrics
from app.schemas import ContactIn, DecisionIn, EventIn, ResponseIn
from coordination.locks import LocalCustomerLock
from decisioning.catalogue import BudgetPeriod, Catalogue, Offer
from decisioning.engine import Decision, DecisionRequest, decide
from decisioning.ports import (
    BudgetCounter,
    ContactHistory,
    CustomerCache,
    CustomerLock,
    EventError,
    EventRules,
    LockTimeout,
    Scorer,
)
from decisioning.quality import validate_features
from decisioning.records import ContactRecord, HistoryEntry, ResponseRecord
from decisioning.summary import RETENTION_SECONDS, HistorySummary
from decisioning.types import Context, Direction, Outcome

log = logging.getLogger("nbo.service")


class DecisionService:
    """Everything one replica needs to decide, record and answer; built once in the app's lifespan."""

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        scorer: Scorer,
        cache: CustomerCache,
        history: ContactHistory,
        budgets: BudgetCounter,
        events: EventRules,
        locks: CustomerLock | None = None,
        metrics: Metrics | None = None,
        max_offers_limit: int = 20,
        max_in_flight: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalogue = catalogue
        self.scorer = scorer
        self.cache = cache
        self.history = history
        self.budgets = budgets
        self.events = events
        self.metrics = metrics or Metrics()
        self.max_offers_limit = max_offers_limit
        self.clock = clock
        self.locks = locks or LocalCustomerLock()
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._exhausted: set[str] = set()  # budget keys known to be used up in their period
        self._budgeted = [o for o in catalogue.offers if o.budget is not None]

    # --- decisions ---------------------------------------------------------------------------------------

    async def decide(self, body: DecisionIn) -> Decision:
        """Decide for one contact, record the decision durably, then return it."""
        self._check_decision(body)
        if self._in_flight >= self.max_in_flight:
            # Shed load at once: queueing beyond capacity only turns every answer into a late one.
            self.metrics.errors.labels("overloaded").inc()
            raise Unavailable(f"overloaded: {self._in_flight} decisions in progress; retry")
        self._in_flight += 1
        try:
            return await self._decide_and_observe(body)
        finally:
            self._in_flight -= 1

    async def _decide_and_observe(self, body: DecisionIn) -> Decision:
        start = time.perf_counter()
        # One customer's decisions are serialised (across replicas with Redis), so two concurrent requests
        # cannot both slip under a cap: the second one reads the first one's presentations.
        try:
            async with self.locks.hold(body.customer_id):
                decision = await self._decide_locked(body)
        except LockTimeout as err:
            self.metrics.errors.labels("customer_lock").inc()
            raise Unavailable("too many concurrent decisions for this customer; retry") from err
        self._observe(decision, time.perf_counter() - start)
        return decision

    async def _decide_locked(self, body: DecisionIn) -> Decision:
        # Checked under the customer's lock: a retry racing its first attempt waits for it, then sees it.
        if body.request_id and (earlier := await self.history.find_decision(body.request_id)):
            raise InvalidField("request_id", f"request already decided as {earlier}", body.request_id)
        now = self.clock()
        scorer = self.scorer.for_customer(body.customer_id)  # champion or challenger, by a stable hash
        channel, timer = body.channel, self._stage_timer(body.channel, scorer.version)
        snapshot = await self.cache.load(body.customer_id)
        summary = snapshot.summary if snapshot.summary is not None else await self._rebuild(body.customer_id, now)
        customer = validate_features(self.catalogue.features, body.customer_id, snapshot, now)
        timer("load")
        context = _context(body, now)
        request = DecisionRequest(f"d-{uuid.uuid4().hex}", customer, context, body.max_offers, body.explain)
        decision, reserved = await self._decide_within_budgets(request, summary, scorer)
        timer("decide")
        await self._record(decision, reserved, body.request_id)
        timer("record")
        self._count_data_quality(channel, customer.known, len(customer.defaulted), len(customer.stale))
        return decision

    async def _decide_within_budgets(
        self, request: DecisionRequest, summary: HistorySummary, scorer: Scorer
    ) -> tuple[Decision, list[str]]:
        now = request.context.now
        exhausted = {o.id for o in self._budgeted if self._budget_key(o, now) in self._exhausted}
        # Every failed round marks at least one more offer exhausted, so this ends within len(offers) + 1.
        for _ in range(len(self.catalogue.offers) + 1):
            decision = decide(self.catalogue, request, summary, scorer, exhausted_budgets=frozenset(exhausted))
            failed, reserved = await self._reserve(decision)
            if not failed:
                return decision, reserved
            exhausted |= failed
        raise Unavailable("volume budgets could not be reserved")

    async def _reserve(self, decision: Decision) -> tuple[set[str], list[str]]:
        """Reserve one unit of every chosen offer's budget; on any failure give back what this took."""
        reserved: list[str] = []
        failed: set[str] = set()
        for presented in decision.offers:
            offer = presented.offer
            if offer.budget is None:
                continue
            key = self._budget_key(offer, decision.context.now)
            if await self.budgets.reserve(key, offer.budget.limit, _budget_ttl(offer)):
                reserved.append(key)
            else:
                failed.add(offer.id)
                self._exhausted.add(key)
                self.metrics.budget_rejections.labels(offer.id).inc()
        if failed:
            await self._release(reserved)
            reserved = []
        return failed, reserved

    def _budget_key(self, offer: Offer, now: float) -> str:
        if offer.budget is None:
            return ""
        if offer.budget.period is BudgetPeriod.CAMPAIGN:
            return f"budget:{offer.id}:campaign"
        day = datetime.fromtimestamp(now, ZoneInfo(self.catalogue.settings.timezone)).date().isoformat()
        return f"budget:{offer.id}:{day}"

    async def _release(self, keys: Sequence[str]) -> None:
        for key in keys:
            await self.budgets.release(key)

    async def _record(self, decision: Decision, reserved: list[str], request_id: str | None) -> None:
        record = decision.to_record(request_id)
        customer_id, now = decision.customer_id, decision.context.now
        # The summary first: a crash before the commit leaves it one presentation too many (a cap then errs
        # towards not contacting), where a crash after the commit would leave it one too few for good.
        await self._append(customer_id, record.events(), now)
        try:
            stored = await self.history.record_decision(record)
        except Exception as err:
            # Not recorded means not delivered: give the budget back and let the caller retry.
            await self._undo(customer_id, reserved, now)
            self.metrics.errors.labels("history_write").inc()
            log.error("decision not recorded", extra={"decision_id": decision.decision_id, "error": repr(err)})
            raise Unavailable("the contact history is unavailable; the decision was not made") from err
        if not stored:  # another attempt of this request was stored first (its lock lease ran out): not made
            await self._undo(customer_id, reserved, now)
            earlier = await self.history.find_decision(request_id) if request_id else None
            raise InvalidField("request_id", f"request already decided as {earlier}", request_id)

    async def _undo(self, customer_id: str, reserved: list[str], now: float) -> None:
        """Give back the budget units and take the unmade decision out of the summary."""
        await self._release(reserved)
        try:
            await self._rebuild(customer_id, now)
        except Exception as err:  # the history is down: the summary keeps a presentation too many
            log.warning("summary not rebuilt", extra={"error": repr(err)})

    async def _append(self, customer_id: str, events: list, now: float) -> None:
        try:
            await self.cache.append_events(customer_id, events, now)
        except Exception as err:  # the cache is failing: the decision still stands, the summary lags
            self.metrics.errors.labels("summary_update").inc()
            log.warning("summary not updated", extra={"error": repr(err)})

    async def _rebuild(self, customer_id: str, now: float) -> HistorySummary:
        summary = await self.history.summary(customer_id, since=now - RETENTION_SECONDS)
        await self.cache.store_summary(customer_id, summary)
        return summary

    def _check_decision(self, body: DecisionIn) -> None:
        self._check_channel(body.channel, "channel")
        if body.max_offers > self.max_offers_limit:
            raise InvalidField("max_offers", f"at most {self.max_offers_limit} offers per decision", body.max_offers)

    def _stage_timer(self, channel: str, version: str) -> Callable[[str], None]:
        last = [time.perf_counter()]

        def lap(stage: str) -> None:
            now = time.perf_counter()
            self.metrics.stage_seconds.labels(stage, channel, version).observe(now - last[0])
            last[0] = now

        return lap

    def _observe(self, decision: Decision, seconds: float) -> None:
        m, channel = self.metrics, decision.context.channel
        m.decision_seconds.labels(channel).observe(seconds)
        m.decisions.labels(channel, "offers" if decision.offers else "empty").inc()
        for p in decision.offers:
            m.presented.labels(p.offer.id, channel).inc()
        for s in decision.suppressions:
            m.suppressions.labels(s.policy_id).inc()

    def _count_data_quality(self, channel: str, known: bool, defaulted: int, stale: int) -> None:
        if not known:
            self.metrics.unknown_customers.labels(channel).inc()
        if defaulted:
            self.metrics.defaulted.labels(channel).inc(defaulted)
        if stale:
            self.metrics.stale.labels(channel).inc(stale)

    # --- responses, events, outbound contacts -----------------------------------------------------------

    async def respond(self, body: ResponseIn) -> tuple[str, str | None, bool]:
        """Record a response, attributed to its decision (or to the latest contact of the offer)."""
        now = self.clock()
        at = _epoch(body.at, now)
        contact = await self._attributed_contact(body)
        group = contact.group if contact is not None else self._offer_group(body.offer_id, "offer_id")
        decision_id = contact.contact_id if contact is not None else None
        response_id = body.request_id or _response_id(body, decision_id, at)
        record = ResponseRecord(
            response_id,
            body.customer_id,
            body.offer_id,
            body.channel,
            Outcome(body.outcome),
            at,
            decision_id,
            group,
        )
        recorded = await self.history.record_response(record)
        if recorded:
            await self._append(body.customer_id, [record.event(group)], now)
            self.metrics.responses.labels(body.outcome, body.channel).inc()
            if record.outcome is Outcome.NOT_DISPLAYED and contact is not None:
                await self._release_budget_of(contact)
        return response_id, decision_id, recorded

    async def _release_budget_of(self, contact: ContactRecord) -> None:
        """A presentation the channel could not show gives its budget unit back (once: the response is new)."""
        offer = self.catalogue.offer(contact.offer_id)
        if offer is not None and offer.budget is not None and contact.outcome is Outcome.PRESENTED:
            await self.budgets.release(self._budget_key(offer, contact.at))

    async def _attributed_contact(self, body: ResponseIn) -> ContactRecord | None:
        self._check_channel(body.channel, "channel")
        if body.decision_id is None:
            return await self.history.latest_contact(body.customer_id, body.offer_id)
        contact = await self.history.find_contact(body.decision_id, body.offer_id)
        if contact is None:
            raise NotFound(f"decision {body.decision_id} did not present offer {body.offer_id}")
        if contact.customer_id != body.customer_id:
            raise InvalidField("customer_id", "the decision was made for another customer")
        return contact

    async def apply_event(self, body: EventIn) -> list[str]:
        """Turn a customer event into real-time feature updates, applied atomically."""
        if not self.events.knows(body.type):
            known = ", ".join(sorted(self.events.types))
            raise InvalidField("type", f"unknown event type '{body.type}'; one of: {known}", body.type)
        at = _epoch(body.at, self.clock())
        try:
            updates = self.events.updates_for(body.type, body.attributes, at)
        except EventError as err:
            raise InvalidField("attributes", str(err)) from err
        if updates:
            await self.cache.apply_updates(body.customer_id, updates, at)
        self.metrics.events.labels(body.type).inc()
        return [u.feature for u in updates]

    async def record_contacts(self, contacts: Sequence[ContactIn]) -> int:
        """Record outbound sends so that inbound and outbound share one history."""
        now = self.clock()
        records = [self._outbound(i, c, now) for i, c in enumerate(contacts)]
        added = await self.history.record_contacts(records)
        for customer_id in dict.fromkeys(r.customer_id for r in records):
            if added == len(records):
                await self._append(customer_id, [r.event() for r in records if r.customer_id == customer_id], now)
            else:  # some were duplicates: rebuild rather than count a send twice
                await self._rebuild(customer_id, now)
        return added

    def _outbound(self, index: int, c: ContactIn, now: float) -> ContactRecord:
        self._check_channel(c.channel, f"contacts.{index}.channel")
        group = self._offer_group(c.offer_id, f"contacts.{index}.offer_id")
        return ContactRecord(
            contact_id=c.contact_id,
            customer_id=c.customer_id,
            at=_epoch(c.at, now),
            channel=c.channel,
            direction=Direction.OUTBOUND,
            offer_id=c.offer_id,
            group=group,
            outcome=Outcome.SENT,
            treatment=c.treatment,
            campaign=c.campaign,
            catalogue_version=self.catalogue.version,
        )

    def _offer_group(self, offer_id: str, field: str) -> str:
        offer = self.catalogue.offer(offer_id)
        if offer is None:
            raise InvalidField(field, f"unknown offer '{offer_id}'", offer_id)
        return offer.group

    def _check_channel(self, channel: str, field: str) -> None:
        if channel not in self.catalogue.channels:
            raise InvalidField(
                field, f"unknown channel '{channel}'; one of: {', '.join(self.catalogue.channels)}", channel
            )

    # --- reads -------------------------------------------------------------------------------------------

    async def customer_history(self, customer_id: str, limit: int) -> list[HistoryEntry]:
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


def _context(body: DecisionIn, now: float) -> Context:
    extra = body.context.model_dump(exclude={"intent"}, exclude_none=True)
    return Context(
        channel=body.channel, now=now, placement=body.placement, intent=body.context.intent, attributes=extra
    )


def _epoch(at: datetime | None, default: float) -> float:
    if at is None:
        return default
    return at.timestamp() if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC")).timestamp()


def _response_id(body: ResponseIn, decision_id: str | None, at: float) -> str:
    # The same outcome for the same decision and offer is the same response (retries are idempotent);
    # without a decision the time tells responses apart.
    key = f"{body.customer_id}|{decision_id or at}|{body.offer_id}|{body.outcome}"
    return "r-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def _budget_ttl(offer: Offer) -> float | None:
    return 2 * 86_400 if offer.budget is not None and offer.budget.period is BudgetPeriod.DAY else None
