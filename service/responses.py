"""Responses: a customer's answer, attributed to the contact it answers, recorded once.

A response names its decision, or it is attributed to the latest contact of that offer made at or before
the response (in any channel). Retries are idempotent: the same outcome for the same contact and offer is
the same response. A response to an offer that was never contacted is keyed by its time when the caller
gives one, else by its local day, so a retry on the same day is not a second answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from decisioning.catalogue import Catalogue
from decisioning.ports import ContactHistory
from decisioning.records import ContactRecord, ResponseRecord
from decisioning.types import Outcome
from service.budgets import BudgetReservations
from service.commands import Respond
from service.errors import InvalidInput, NotFound
from service.metrics import Metrics
from service.results import ResponseResult
from service.summaries import Summaries
from service.validation import check_channel, known_offer


class ResponseIntake:
    """Attribute, record and apply responses."""

    def __init__(
        self,
        catalogue: Catalogue,
        history: ContactHistory,
        summaries: Summaries,
        budgets: BudgetReservations,
        metrics: Metrics,
        clock: Callable[[], float],
    ) -> None:
        self.catalogue = catalogue
        self.history = history
        self.summaries = summaries
        self.budgets = budgets
        self.metrics = metrics
        self.clock = clock
        self._zone = ZoneInfo(catalogue.settings.timezone)

    async def respond(self, command: Respond) -> ResponseResult:
        """Record the response; `recorded` is False for a retry of one recorded before."""
        check_channel(self.catalogue, command.channel, "channel")
        now = self.clock()
        at = now if command.at is None else command.at
        contact = await self._attributed_contact(command, at)
        group = contact.group if contact else known_offer(self.catalogue, command.offer_id, "offer_id").group
        decision_id = contact.decision_key if contact else None
        response_id = command.request_id or self._response_id(command, decision_id, at)
        record = ResponseRecord(
            response_id, command.customer_id, command.offer_id, command.channel, command.outcome, at, decision_id, group
        )
        recorded = await self.history.record_response(record)
        if recorded:
            await self.summaries.append(command.customer_id, [record.event(group)], now)
            self.metrics.responses.labels(command.outcome.value, command.channel).inc()
            if record.outcome is Outcome.NOT_DISPLAYED and contact is not None:
                await self._release_budget_of(contact)
        return ResponseResult(response_id, decision_id, recorded)

    async def _attributed_contact(self, command: Respond, at: float) -> ContactRecord | None:
        if command.decision_id is None:
            return await self.history.latest_contact(command.customer_id, command.offer_id, at_or_before=at)
        contact = await self.history.find_contact(command.decision_id, command.offer_id)
        if contact is None:
            raise NotFound(f"decision {command.decision_id} did not present offer {command.offer_id}")
        if contact.customer_id != command.customer_id:
            raise InvalidInput("customer_id", "the decision was made for another customer")
        return contact

    async def _release_budget_of(self, contact: ContactRecord) -> None:
        """A presentation the channel could not show gives its budget unit back (once: the response is new)."""
        offer = self.catalogue.offer(contact.offer_id)
        if offer is not None and contact.outcome is Outcome.PRESENTED:
            await self.budgets.give_back(offer, contact.at)

    def _response_id(self, command: Respond, decision_id: str | None, at: float) -> str:
        if decision_id is not None:
            when = decision_id
        elif command.at is not None:
            when = repr(at)
        else:
            when = datetime.fromtimestamp(at, self._zone).date().isoformat()
        key = f"{command.customer_id}|{when}|{command.offer_id}|{command.outcome.value}"
        return "r-" + hashlib.blake2b(key.encode(), digest_size=12).hexdigest()
