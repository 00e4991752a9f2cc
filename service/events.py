"""Customer events: turned into real-time feature updates by the catalogue's event rules, applied at once;
then the catalogue's triggers the event made true start outbound decisions (service/triggers.py)."""

from __future__ import annotations

from collections.abc import Callable

from decisioning.ports import CustomerCache, EventError, EventRules
from service.commands import ApplyEvent
from service.errors import InvalidInput
from service.metrics import Metrics
from service.results import EventResult, TriggerOutcome
from service.triggers import TriggerFiring


class EventIntake:
    """Apply customer events to the features that rules and models read."""

    def __init__(
        self,
        rules: EventRules,
        cache: CustomerCache,
        metrics: Metrics,
        clock: Callable[[], float],
        triggers: TriggerFiring | None = None,
    ) -> None:
        self.rules = rules
        self.triggers = triggers
        self.cache = cache
        self.metrics = metrics
        self.clock = clock

    async def apply(self, command: ApplyEvent) -> EventResult:
        """Apply the event's updates atomically, then fire the triggers it made true (service/triggers.py);
        the features it changed and what each trigger did."""
        if not self.rules.knows(command.type):
            known = ", ".join(self.rules.types)
            raise InvalidInput("type", f"unknown event type '{command.type}'; one of: {known}")
        at = self.clock() if command.at is None else command.at
        try:
            updates = self.rules.updates_for(command.type, command.attributes, at)
        except EventError as err:
            raise InvalidInput("attributes", str(err)) from err
        if updates:
            await self.cache.apply_updates(command.customer_id, updates, at)
        self.metrics.events.labels(command.type).inc()
        updated = tuple(u.feature for u in updates)
        triggered: tuple[TriggerOutcome, ...] = ()
        if self.triggers is not None and updated:
            triggered = await self.triggers.after_event(command.customer_id, command.type, updated)
        return EventResult(command.customer_id, command.type, updated, triggered)
