"""Idempotent retries: a request id that was decided already gets that decision back, as recorded.

A web page that timed out retries with the same `request_id`; it must get something to show (the same
decision id, offers and treatments), and the history must hold the decision once.
"""

from __future__ import annotations

from decisioning.catalogue import Catalogue
from decisioning.engine import Decision, PresentedOffer
from decisioning.ports import ContactHistory
from decisioning.records import ContactRecord, DecisionRecord
from decisioning.types import Context, Direction
from service.errors import InvalidInput

REPLAYED_NOTE = "request id decided already: this is that decision, as recorded"


class RecordedDecisions:
    """Find the decision recorded for a request id, and rebuild it as a `Decision` value."""

    def __init__(self, history: ContactHistory, catalogue: Catalogue) -> None:
        self.history = history
        self.catalogue = catalogue

    async def find(self, request_id: str) -> DecisionRecord | None:
        return await self.history.decision_for_request(request_id)

    def as_decision(self, record: DecisionRecord) -> Decision:
        """The recorded decision with the catalogue's offers and treatments for its channel."""
        context = Context(record.channel, record.at, record.placement, record.intent, dict(record.context))
        offers = tuple(self._presented(c, context) for c in sorted(record.contacts, key=lambda c: c.rank or 0))
        return Decision(
            decision_id=record.decision_id,
            customer_id=record.customer_id,
            context=context,
            offers=offers,
            control_group=record.control_group,
            mode="replayed",
            catalogue_version=record.catalogue_version,
            model_version=record.model_version,
            direction=Direction.OUTBOUND if self.catalogue.is_outbound(record.channel) else Direction.INBOUND,
            notes=(REPLAYED_NOTE,),
            features=record.features,
            feature_schema=record.feature_schema,
        )

    def _presented(self, contact: ContactRecord, context: Context) -> PresentedOffer:
        offer = self.catalogue.offer(contact.offer_id)
        if offer is None or context.channel not in offer.treatments:
            raise InvalidInput(
                "request_id", f"decided already as {contact.contact_id}, with an offer no longer in the catalogue"
            )
        propensity, value = contact.propensity or 0.0, contact.value or 0.0
        weights = self.catalogue.settings.context_weights.get(context.intent or "", {})
        context_weight = float(weights.get(offer.group, weights.get("*", 1.0)))
        priority = contact.priority or 0.0
        base = propensity * value * offer.lever * context_weight
        return PresentedOffer(
            offer,
            offer.treatments[context.channel],
            contact.rank or 1,
            propensity,
            value,
            offer.lever,
            context_weight,
            priority / base if base else 1.0,  # the consistency boost it had, as the recorded priority says
            priority,
            contact.selection_probability or 0.0,
        )

