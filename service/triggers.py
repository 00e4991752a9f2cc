"""Real-time triggers: after an event is applied, decide for the customer in the trigger's channel, through
the same `DecisionPath` as `POST /v1/decisions`, and publish the decision for delivery.

For each trigger whose condition reads a feature the event changed (`decisioning.triggers`):
1. the customer's features are read again (after the event) and the condition evaluated at "now";
2. the (customer, trigger) slot is claimed for the trigger's period (`TriggerClaims`): taken, nothing more;
3. the decision is made and recorded as an outbound selection by the decision path: eligibility, contact
   policies and budgets apply (a customer already at the SMS cap gets an empty decision);
4. a decision with offers is published (`DeliveryOutlet`): the Redis Stream or the in-process queue, and the
   webhook when one is configured.

The event is applied and acknowledged whatever happens here: a failed trigger decision (a store down) is
counted (`nbo_triggers_suppressed_total{reason="error"}`), logged and its slot released, never turned into
a failed event (a retried event would count twice).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from decisioning.catalogue import Catalogue
from decisioning.engine import Decision
from decisioning.ports import CustomerCache
from decisioning.quality import validate_features
from decisioning.triggers import (
    DeliveryOutlet,
    Trigger,
    TriggerClaims,
    TriggerDelivery,
    delivered_offers,
    holds,
    triggers_to_evaluate,
)
from service.commands import Decide
from service.decisions import DecisionPath
from service.metrics import Metrics
from service.results import TriggerOutcome

log = logging.getLogger("nbo.triggers")


@dataclass(frozen=True, slots=True)
class TriggerOutlets:
    """The ports triggers need beyond the decision path: the once-per-period claims and the outlet."""

    claims: TriggerClaims
    outlet: DeliveryOutlet


class TriggerFiring:
    """Evaluates a catalogue's triggers after events and makes, records and publishes their decisions."""

    def __init__(
        self,
        catalogue: Catalogue,
        decisions: DecisionPath,
        cache: CustomerCache,
        outlets: TriggerOutlets,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.catalogue, self.decisions, self.cache = catalogue, decisions, cache
        self.claims, self.outlet = outlets.claims, outlets.outlet
        self.metrics, self.clock = metrics, clock

    async def after_event(
        self, customer_id: str, event_type: str, updated: Sequence[str]
    ) -> tuple[TriggerOutcome, ...]:
        """Fire the triggers the event made true; what each evaluated trigger that held did."""
        candidates = triggers_to_evaluate(self.catalogue.triggers, updated)
        if not candidates:
            return ()
        try:
            now = self.clock()
            snapshot = await self.cache.load(customer_id)
            features = validate_features(self.catalogue.features, customer_id, snapshot, now).values
        except Exception as error:  # the event is applied: a trigger never fails it (module docstring)
            log.warning("trigger features not read", extra={"event": event_type, "error": type(error).__name__})
            return tuple(self._suppressed(t, "error") for t in candidates)
        held = [t for t in candidates if holds(t, features, now)]
        return tuple([await self._fire(t, customer_id, event_type) for t in held])

    async def _fire(self, trigger: Trigger, customer_id: str, event_type: str) -> TriggerOutcome:
        try:
            if not await self.claims.claim(customer_id, trigger.name, trigger.period_seconds):
                return self._suppressed(trigger, "period")
        except Exception as error:
            log.warning("trigger slot not claimed", extra={"trigger": trigger.name, "error": type(error).__name__})
            return self._suppressed(trigger, "error")
        decision = await self._decide(trigger, customer_id)
        if decision is None:
            return self._suppressed(trigger, "error")
        self.metrics.triggers_fired.labels(trigger.name, trigger.channel).inc()
        if decision.degraded is not None:
            # Decided without the customer's history (a store down): caps were not checked, so nothing is
            # sent. The selection is recorded and stops counting once unconfirmed.
            return self._suppressed(trigger, "degraded", decision.decision_id)
        if not decision.offers:
            return self._suppressed(trigger, _empty_reason(decision), decision.decision_id)
        return await self._publish(trigger, decision, event_type)

    async def _decide(self, trigger: Trigger, customer_id: str) -> Decision | None:
        command = Decide(
            customer_id, trigger.channel, max_offers=trigger.max_offers, intent=trigger.intent,
            context={"trigger": trigger.name},
        )  # fmt: skip
        try:
            decision, _ = await self.decisions.decide(command)
            return decision
        except Exception as error:  # a store down, an overload: give the slot back for the next event
            log.warning("trigger decision failed", extra={"trigger": trigger.name, "error": type(error).__name__})
            await self._release(customer_id, trigger)
            return None

    async def _release(self, customer_id: str, trigger: Trigger) -> None:
        try:
            await self.claims.release(customer_id, trigger.name)
        except Exception as error:  # the slot then simply runs out with its period
            log.warning("trigger slot not released", extra={"trigger": trigger.name, "error": type(error).__name__})

    async def _publish(self, trigger: Trigger, decision: Decision, event_type: str) -> TriggerOutcome:
        delivery = delivery_of(trigger, decision, event_type)
        offers = tuple(o.offer_id for o in delivery.offers)
        try:
            sinks = await self.outlet.publish(delivery)
        except Exception as error:  # recorded as a selection: it stops counting once unconfirmed
            log.error("trigger delivery not published", extra={"trigger": trigger.name, "error": type(error).__name__})
            self.metrics.triggers_suppressed.labels(trigger.name, "publish_failed").inc()
            return TriggerOutcome(trigger.name, trigger.channel, decision.decision_id, offers, (), "publish_failed")
        for sink in sinks:
            self.metrics.triggers_published.labels(trigger.name, sink).inc()
        return TriggerOutcome(trigger.name, trigger.channel, decision.decision_id, offers, tuple(sinks))

    def _suppressed(self, trigger: Trigger, reason: str, decision_id: str | None = None) -> TriggerOutcome:
        self.metrics.triggers_suppressed.labels(trigger.name, reason).inc()
        return TriggerOutcome(trigger.name, trigger.channel, decision_id, reason=reason)


def delivery_of(trigger: Trigger, decision: Decision, event_type: str) -> TriggerDelivery:
    """The message published for a triggered decision with offers."""
    return TriggerDelivery(
        delivery_id=f"tr-{uuid.uuid4().hex}",
        trigger=trigger.name,
        customer_id=decision.customer_id,
        channel=trigger.channel,
        decision_id=decision.decision_id,
        event_type=event_type,
        at=decision.context.now,
        offers=delivered_offers(decision.offers),
        catalogue_version=decision.catalogue_version,
        model_version=decision.model_version,
    )


def _empty_reason(decision: Decision) -> str:
    if decision.control_group:
        return "control_group"
    return "contact_policy" if decision.suppressions else "no_offer"
