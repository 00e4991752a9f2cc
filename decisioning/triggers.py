"""Real-time triggers: conditions over a customer's features that, made true by an event, start an outbound
decision in a named channel (`triggers.yaml` beside `events.yaml`; loaded by `policies/triggers.py`).

A trigger is *level*-triggered: after an event is applied, every trigger whose condition reads a feature
the event changed is evaluated on the customer's features as they are now (windowed counts at this moment),
and fires when it holds, whether or not it held before the event. What keeps it from firing on every event
is its period: at most one firing per customer and trigger per `period_seconds` (claimed through the
`TriggerClaims` port before the decision is made). Edge detection ("false before, true after") would need a
second read of the features before the event, and two concurrent events could both see "false before".

>>> from decisioning.rules import compile_rule
>>> rule = compile_rule("large_withdrawals_7d >= 2", features={"large_withdrawals_7d": "number"})
>>> t = Trigger("two_withdrawals", rule, "sms", period_seconds=7 * 86_400.0)
>>> [x.name for x in triggers_to_evaluate((t,), updated=("large_withdrawals_7d",))]
['two_withdrawals']
>>> holds(t, {"large_withdrawals_7d": 2}, now=0.0)
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from decisioning.rules import CompiledRule, RuleEnv, RuleError
from decisioning.types import Context, FeatureValue


@dataclass(frozen=True, slots=True)
class Trigger:
    """One trigger rule: when `condition` holds after an event, decide for the customer in `channel`."""

    name: str
    condition: CompiledRule
    channel: str
    period_seconds: float
    max_offers: int = 1
    intent: str | None = None  # the decision's intent (context weights and suitability rules read it)
    description: str = ""

    @property
    def reads(self) -> frozenset[str]:
        """The features the condition reads: an event that changes none of them cannot fire it."""
        return frozenset(self.condition.names)


def triggers_to_evaluate(triggers: Iterable[Trigger], updated: Iterable[str]) -> list[Trigger]:
    """The triggers an event that changed the features `updated` may have made true, in catalogue order."""
    changed = frozenset(updated)
    return [t for t in triggers if t.reads & changed]


def holds(trigger: Trigger, features: Mapping[str, FeatureValue], now: float) -> bool:
    """Whether the trigger's condition holds on these (validated) features at `now`.

    The context is the trigger's channel and intent, as the decision it starts will see them. A condition
    that cannot be evaluated (it was checked at load, so only on a value of the wrong type) is false.
    """
    env = RuleEnv(features, Context(trigger.channel, now=now, intent=trigger.intent))
    try:
        return bool(trigger.condition.evaluate(env))
    except RuleError:
        return False


@dataclass(frozen=True, slots=True)
class DeliveredOffer:
    """An offer of a triggered decision, with what the channel shows."""

    offer_id: str
    rank: int
    title: str
    text: str
    propensity: float
    value: float
    priority: float
    url: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerDelivery:
    """What is published for delivery when a trigger's decision has offers: the message a campaign tool or
    an SMS gateway sends, and the ids it confirms the send with (`POST /v1/contacts` with `decision_id`)."""

    delivery_id: str
    trigger: str
    customer_id: str
    channel: str
    decision_id: str
    event_type: str
    at: float
    offers: tuple[DeliveredOffer, ...]
    catalogue_version: str
    model_version: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the stream entry, the webhook body and the endpoint carry)."""
        return {
            "delivery_id": self.delivery_id,
            "trigger": self.trigger,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "decision_id": self.decision_id,
            "event_type": self.event_type,
            "at": self.at,
            "offers": [_offer_dict(o) for o in self.offers],
            "catalogue_version": self.catalogue_version,
            "model_version": self.model_version,
        }


def _offer_dict(o: DeliveredOffer) -> dict[str, Any]:
    return {
        "offer_id": o.offer_id, "rank": o.rank, "title": o.title, "text": o.text, "url": o.url,
        "propensity": o.propensity, "value": o.value, "priority": o.priority,
    }  # fmt: skip


class TriggerClaims(Protocol):
    """At most once per customer, trigger and period, across replicas.

    >>> await claims.claim("c-000042", "competitor_transfer", period_seconds=7 * 86_400)  # doctest: +SKIP
    True
    """

    async def claim(self, customer_id: str, trigger: str, period_seconds: float) -> bool:
        """Take the (customer, trigger) slot for `period_seconds` if it is free; whether it was taken."""
        ...

    async def release(self, customer_id: str, trigger: str) -> None:
        """Free the slot again (the firing did not happen: its decision could not be made)."""
        ...


class DeliveryOutlet(Protocol):
    """Where triggered decisions go for delivery: a Redis Stream, an in-process queue, a webhook.

    >>> await outlet.publish(delivery)   # doctest: +SKIP
    ['stream']
    """

    async def publish(self, delivery: TriggerDelivery) -> list[str]:
        """Hand the delivery over; the sinks that accepted it. Raises when the primary sink refused it."""
        ...

    async def read(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """The deliveries published after the id `after` (None: from the oldest kept), oldest first, at most
        `limit`, as (id, `TriggerDelivery.to_dict()`). Raises ValueError for an id it cannot read."""
        ...

    async def close(self) -> None:
        """Finish (or give up) what is still being delivered, then release the clients."""
        ...


def delivered_offers(presented: Sequence[Any]) -> tuple[DeliveredOffer, ...]:
    """The presented offers of a decision (`decisioning.engine.PresentedOffer`) as delivered offers."""
    return tuple(
        DeliveredOffer(
            p.offer.id, p.rank, p.treatment.title, p.treatment.text, p.propensity, p.value, p.priority,
            p.treatment.url,
        )
        for p in presented
    )  # fmt: skip
