"""Rows of the unified contact history, as the core hands them to a history adapter.

One history for all channels and directions: inbound decisions (one `ContactRecord` per presented
offer, outcome `presented`), outbound sends (outcome `sent`) and responses. Append-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from decisioning.types import ContactEvent, Direction, FeatureValue, Outcome


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """One offer put in front of a customer: presented in a decision, or sent outbound."""

    contact_id: str  # decision id for inbound decisions; the send's id for outbound contacts
    customer_id: str
    at: float
    channel: str
    direction: Direction
    offer_id: str
    group: str
    outcome: Outcome  # PRESENTED (inbound decision), SELECTED (outbound decision) or SENT
    treatment: str | None = None  # the treatment's title, as shown
    placement: str | None = None
    rank: int | None = None
    propensity: float | None = None
    value: float | None = None
    priority: float | None = None
    selection_probability: float | None = None
    model_version: str | None = None
    catalogue_version: str | None = None
    campaign: str | None = None
    # A send that confirms an outbound decision's selection names that decision: the send then takes the
    # selection's place (one contact is counted once), and responses attributed to either reach both.
    decision_id: str | None = None

    @property
    def decision_key(self) -> str:
        """The decision this contact belongs to: its own id, or the outbound decision a send confirms."""
        return self.decision_id or self.contact_id

    def event(self) -> ContactEvent:
        return ContactEvent(self.at, self.offer_id, self.group, self.channel, self.outcome, self.decision_key)


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """A decision as the history keeps it: the request, its outcome and every presented offer."""

    decision_id: str
    customer_id: str
    at: float
    channel: str
    placement: str | None
    intent: str | None
    control_group: bool
    model_version: str
    catalogue_version: str
    contacts: tuple[ContactRecord, ...]
    context: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    candidates: tuple[Mapping[str, Any], ...] = ()  # logged candidates and why each was kept or dropped
    request_id: str | None = None
    # The validated customer feature values the decision was made on (the model's inputs), one per spec of
    # the catalogue's feature schema, in its order; `feature_schema` is that schema's version (a hash, see
    # `decisioning.catalogue.feature_schema_version`). Training reads them instead of today's features, so
    # it is point in time by construction, and a replay can re-decide from the same inputs. None: a
    # decision recorded before they were kept (or one not made by the engine).
    features: tuple[FeatureValue, ...] | None = None
    feature_schema: str | None = None

    def events(self) -> list[ContactEvent]:
        return [c.event() for c in self.contacts]


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A customer's response to an offer, attributed to a contact (`decision_id`) when one is known."""

    response_id: str  # idempotency key
    customer_id: str
    offer_id: str
    channel: str
    outcome: Outcome
    at: float
    decision_id: str | None = None
    group: str | None = None

    def event(self, group: str) -> ContactEvent:
        return ContactEvent(self.at, self.offer_id, group, self.channel, self.outcome, self.decision_id)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of a customer's history as the API lists it."""

    kind: str  # "contact" or "response"
    id: str
    customer_id: str
    at: float
    channel: str
    direction: str
    offer_id: str
    group: str | None
    outcome: str
    decision_id: str | None
    details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
