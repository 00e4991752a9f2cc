"""Real-time triggers on fakes: which triggers an event evaluates, when they hold, and what the service does
when one fires (the decision path's policies apply, once per period, published once)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from decisioning.catalogue import Catalogue, FeatureSpec, FeatureType, Level
from decisioning.ports import FeatureUpdate, StoreUnavailable
from decisioning.rules import compile_rule
from decisioning.triggers import Trigger, TriggerDelivery, holds, triggers_to_evaluate
from decisioning.types import DAY
from service.commands import ApplyEvent
from service.triggers import TriggerOutlets
from tests.unit.factories import NOW, catalogue, offer, policy
from tests.unit.service.fakes import FakeCache

SCHEMA = {"age": "number", "card_declined_count": "number", "segment": "category"}
FEATURES = (
    FeatureSpec("age", FeatureType.NUMBER, 0),
    FeatureSpec("segment", FeatureType.CATEGORY, "mass"),
    FeatureSpec("card_declined_count", FeatureType.NUMBER, 0, source="event"),
)


def trigger(name: str = "declined", when: str = "card_declined_count >= 1", channel: str = "sms", **kw: Any):
    return Trigger(name, compile_rule(when, features=SCHEMA), channel, kw.pop("period", DAY), **kw)


# --- the core: which triggers an event evaluates, and when one holds -----------------------------------


def test_an_event_evaluates_only_the_triggers_whose_condition_reads_a_feature_it_changed():
    declined, by_age = trigger(), trigger("old", "age >= 90 and card_declined_count >= 0")
    segment = Trigger("segment", compile_rule("segment == 'vip'", features=SCHEMA), "sms", DAY)
    assert triggers_to_evaluate((declined, by_age, segment), ["card_declined_count"]) == [declined, by_age]
    assert triggers_to_evaluate((declined, segment), ["salary_last_at"]) == []


def test_a_trigger_holds_on_the_features_after_the_event_in_its_own_channel_and_intent():
    assert holds(trigger(), {"card_declined_count": 1.0}, NOW)
    assert not holds(trigger(), {"card_declined_count": 0.0}, NOW)
    assert not holds(trigger(), {}, NOW)  # a missing feature: a comparison with it is false
    in_channel = trigger(when="channel == 'sms' and intent == 'card_declined' and card_declined_count > 0")
    assert holds(dataclasses.replace(in_channel, intent="card_declined"), {"card_declined_count": 2.0}, NOW)
    assert not holds(in_channel, {"card_declined_count": 2.0}, NOW)


def test_a_condition_that_cannot_be_evaluated_is_false_not_an_error():
    untyped = Trigger("t", compile_rule("card_declined_count + 1 > 1"), "sms", DAY)
    assert not holds(untyped, {"card_declined_count": "many"}, NOW)


# --- the service: fired through the decision path ---------------------------------------------------------


class ApplyingCache(FakeCache):
    """The fake cache, with `incr` updates applied to the features (the real caches do it atomically);
    `down_after` loads, it is unreachable."""

    down_after: int | None = None

    async def load(self, customer_id: str):
        if self.down_after is not None:
            if self.down_after <= 0:
                raise StoreUnavailable("redis", "down")
            self.down_after -= 1
        return await super().load(customer_id)

    async def apply_updates(self, customer_id: str, updates: Sequence[FeatureUpdate], at: float) -> None:
        await super().apply_updates(customer_id, updates, at)
        row = self.features.setdefault(customer_id, {})
        for u in updates:
            row[u.feature] = float(row.get(u.feature) or 0) + float(u.value or 0)


class Claims:
    def __init__(self, clock) -> None:
        self.clock, self.until = clock, {}

    async def claim(self, customer_id: str, name: str, period_seconds: float) -> bool:
        if self.until.get((customer_id, name), 0.0) > self.clock():
            return False
        self.until[(customer_id, name)] = self.clock() + period_seconds
        return True

    async def release(self, customer_id: str, name: str) -> None:
        self.until.pop((customer_id, name), None)


class Outlet:
    def __init__(self) -> None:
        self.published: list[TriggerDelivery] = []
        self.down = False

    async def publish(self, delivery: TriggerDelivery) -> list[str]:
        if self.down:
            raise OSError("stream down")
        self.published.append(delivery)
        return ["queue"]

    async def read(self, after: str | None, limit: int) -> list[tuple[str, dict[str, Any]]]:
        return [(str(i), d.to_dict()) for i, d in enumerate(self.published, 1)][:limit]

    async def close(self) -> None:
        return None


def sms_catalogue(*triggers: Trigger) -> Catalogue:
    sms_cap = policy("sms_daily_cap", ["sent"], Level.ALL, hours=24, channels=["sms"])
    offers = [offer("card", value=100.0), offer("savings", "savings", value=50.0)]
    cat = catalogue(offers, [sms_cap], outbound={"sms": DAY, "email": 2 * DAY})
    return dataclasses.replace(cat, features=FEATURES, triggers=triggers or (trigger(),))


def built(build, cat: Catalogue | None = None) -> tuple[Any, Outlet]:
    """The fakes' world, its service rebuilt with an applying cache and the trigger outlets."""
    outlet = Outlet()
    world = build(sms_catalogue() if cat is None else cat)
    world.cache = ApplyingCache(world.cache.features)
    world.service = type(world.service)(
        catalogue=world.catalogue, scorer=world.service.scorer, cache=world.cache, history=world.history,
        budgets=world.budgets, events=world.service.event_rules, locks=world.locks, clock=world.clock,
        triggers=TriggerOutlets(Claims(world.clock), outlet),
    )  # fmt: skip
    return world, outlet


async def declined(world, customer: str = "c-1"):
    return await world.service.apply_event(ApplyEvent(customer, "card_declined", {"amount": 54.2}))


async def test_an_event_that_fires_a_trigger_makes_one_outbound_decision_recorded_and_published(build):
    world, outlet = built(build)
    result = await declined(world)
    [fired] = result.triggered
    assert (fired.trigger, fired.channel, fired.offers, fired.published) == ("declined", "sms", ("card",), ("queue",))
    [delivery] = outlet.published
    assert delivery.decision_id == fired.decision_id and delivery.customer_id == "c-1"
    assert [o.offer_id for o in delivery.offers] == ["card"] and delivery.event_type == "card_declined"
    record = world.history.decisions[fired.decision_id]
    assert record.channel == "sms" and [c.outcome.value for c in record.contacts] == ["selected"]
    metrics = world.service.metrics
    assert metrics.triggers_fired.labels("declined", "sms")._value.get() == 1
    assert metrics.triggers_published.labels("declined", "queue")._value.get() == 1


async def test_a_second_event_within_the_period_fires_nothing_and_after_it_fires_again(build):
    world, outlet = built(build, sms_catalogue(trigger(period=2 * DAY)))
    await declined(world)
    world.clock.advance(DAY + 60)  # the SMS cap (24 h) is over, the trigger's period (2 days) is not
    [second] = (await declined(world)).triggered
    assert second.reason == "period" and second.decision_id is None and len(outlet.published) == 1
    assert len(world.history.decisions) == 1
    assert world.service.metrics.triggers_suppressed.labels("declined", "period")._value.get() == 1
    world.clock.advance(DAY)
    [third] = (await declined(world)).triggered
    assert third.published == ("queue",) and len(outlet.published) == 2


async def test_a_customer_at_the_channels_cap_gets_nothing_and_the_empty_decision_is_recorded(build):
    world, outlet = built(build, sms_catalogue(trigger("first"), trigger("second", "card_declined_count >= 1")))
    first, second = (await declined(world)).triggered
    assert first.published == ("queue",)
    # The first trigger's SMS selection counts against the SMS cap at once: the second gets an empty decision.
    assert second.reason == "contact_policy" and second.offers == () and second.decision_id is not None
    assert len(outlet.published) == 1 and world.history.decisions[second.decision_id].contacts == ()
    assert world.service.metrics.triggers_suppressed.labels("second", "contact_policy")._value.get() == 1


async def test_an_event_that_leaves_the_condition_false_or_a_catalogue_without_triggers_fires_nothing(build):
    world, outlet = built(build, sms_catalogue(trigger(when="card_declined_count >= 2")))
    assert (await declined(world)).triggered == ()
    assert outlet.published == [] and world.history.decisions == {}
    plain, _ = built(build, dataclasses.replace(sms_catalogue(), triggers=()))
    assert (await declined(plain)).triggered == ()


async def test_a_trigger_that_cannot_decide_releases_its_slot_and_never_fails_the_event(build):
    world, _ = built(build)
    world.history.down = True
    result = await declined(world)
    assert result.updated == ("card_declined_count",) and result.triggered[0].reason == "error"
    world.history.down = False
    [again] = (await declined(world)).triggered  # the slot was released: the next event fires it
    assert again.published == ("queue",)


async def test_a_delivery_that_cannot_be_published_is_counted_and_the_event_still_applies(build):
    world, outlet = built(build)
    outlet.down = True
    [fired] = (await declined(world)).triggered
    assert fired.reason == "publish_failed" and fired.decision_id in world.history.decisions
    assert world.service.metrics.triggers_suppressed.labels("declined", "publish_failed")._value.get() == 1


async def test_a_decision_made_while_a_store_is_down_is_not_sent(build):
    world, outlet = built(build)
    world.cache.down_after = 1  # the trigger reads the features, then the decision finds the cache down
    [fired] = (await declined(world)).triggered
    assert fired.reason == "degraded" and fired.decision_id in world.history.decisions
    assert outlet.published == []
