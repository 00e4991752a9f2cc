"""Customer events: turned into real-time feature updates by the catalogue's event rules, applied at once."""

from __future__ import annotations

from collections.abc import Callable

from decisioning.ports import CustomerCache, EventError, EventRules
from service.commands import ApplyEvent
from service.errors import InvalidInput
from service.metrics import Metrics
from service.results import EventResult


class EventIntake:
    """Apply customer events to the features that rules and models read."""

    def __init__(
        self, rules: EventRules, cache: CustomerCache, metrics: Metrics, clock: Callable[[], float]
    ) -> None:
        self.rules = rules
        self.cache = cache
        self.metrics = metrics
        self.clock = clock

    async def apply(self, command: ApplyEvent) -> EventResult:
        """Apply the event's updates atomically; the features it changed."""
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
        return EventResult(command.customer_id, command.type, tuple(u.feature for u in updates))
