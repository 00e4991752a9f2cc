"""Request and response bodies of the HTTP API (pydantic v2), validated strictly at the edge."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StringConstraints, model_validator

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
Key = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")]
MAX_STRING = 1024
INT64 = (-(2**63), 2**63 - 1)


def _scalar(value: Any) -> Any:
    """A context or event value: a scalar every store keeps as it is. Integers stay within 64 bits (JSON
    encoders and databases refuse larger ones), numbers are finite, strings short, and nothing nests."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError("integer out of range: whole numbers must fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number must be finite (not NaN or infinity)")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"string longer than {MAX_STRING} characters")
        return value
    raise ValueError("must be a string, number, true/false or null (no lists or objects)")


Scalar = Annotated[str | int | float | bool | None, PlainValidator(_scalar)]
Attributes = Annotated[dict[Key, Scalar], Field(max_length=50)]
MAX_CONTEXT_KEYS = 32


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DecisionContext(Strict):
    """The real-time context: an intent, and free-form scalar attributes rules read with `context('key')`."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    __pydantic_extra__: dict[Key, Scalar] = Field(init=False)  # type: ignore[assignment]

    intent: Name | None = None
    page: Annotated[str, StringConstraints(max_length=256)] | None = None
    device: Annotated[str, StringConstraints(max_length=64)] | None = None

    @model_validator(mode="after")
    def _bounded(self) -> DecisionContext:
        if len(self.model_extra or {}) + 3 > MAX_CONTEXT_KEYS:
            raise ValueError(f"at most {MAX_CONTEXT_KEYS} context attributes")
        return self


class DecisionIn(Strict):
    customer_id: Identifier
    channel: Name
    placement: Name | None = None
    max_offers: int = Field(1, ge=1)
    context: DecisionContext = Field(default_factory=DecisionContext)
    explain: bool = False
    request_id: Identifier | None = None


class TreatmentOut(BaseModel):
    channel: str
    title: str
    text: str = ""
    image_url: str | None = None
    url: str | None = None
    script: str | None = None


class OfferOut(BaseModel):
    offer_id: str
    name: str
    group: str
    rank: int
    treatment: TreatmentOut
    propensity: float
    value: float
    priority: float
    selection_probability: float


class DecisionOut(BaseModel):
    decision_id: str
    customer_id: str
    channel: str
    placement: str | None
    offers: list[OfferOut]
    control_group: bool
    catalogue_version: str
    model_version: str
    direction: str = "inbound"  # outbound: the offers are selections; confirm the sends with /v1/contacts
    replayed: bool = False  # the request id was decided already: this is that decision, as recorded
    notes: list[str] = []
    explanation: list[dict[str, Any]] | None = None
    # A store was down: decided without features, history or budgets (README "When a store fails").
    degraded: bool = False
    degraded_reason: str | None = None  # redis_unavailable, history_unavailable


class ResponseIn(Strict):
    customer_id: Identifier
    offer_id: Identifier
    channel: Name
    outcome: Annotated[str, StringConstraints(pattern=r"^(clicked|accepted|declined|ignored|not_displayed)$")]
    decision_id: Identifier | None = None
    at: datetime | None = None
    request_id: Identifier | None = None


class ResponseOut(BaseModel):
    response_id: str
    decision_id: str | None
    recorded: bool  # False: a duplicate of a response already recorded (idempotent)


class EventIn(Strict):
    customer_id: Identifier
    type: Name
    at: datetime | None = None
    attributes: Attributes = Field(default_factory=dict)


class TriggeredOut(BaseModel):
    """A trigger the event made true, and what it did (docs/triggers.md)."""

    trigger: str
    channel: str
    decision_id: str | None = None  # the outbound decision it made (also when it has no offer)
    offers: list[str] = []
    published: list[str] = []  # the sinks that took the delivery: stream or queue, webhook
    reason: str | None = None  # why nothing was delivered: period, contact_policy, control_group, no_offer...


class EventOut(BaseModel):
    customer_id: str
    type: str
    updated: list[str]
    triggered: list[TriggeredOut] = []


class ContactIn(Strict):
    contact_id: Identifier
    customer_id: Identifier
    offer_id: Identifier
    channel: Name
    at: datetime | None = None
    treatment: Annotated[str, StringConstraints(max_length=256)] | None = None
    campaign: Identifier | None = None
    # The outbound decision whose selection this send confirms (it then counts once, as this send).
    decision_id: Identifier | None = None


class ContactsIn(Strict):
    contacts: Annotated[list[ContactIn], Field(min_length=1, max_length=10_000)]


class SendOut(BaseModel):
    contact_id: str
    offer_id: str
    recorded: bool  # False: recorded before (a retried list)
    confirms: str | None  # the outbound decision this send confirmed
    over_policies: list[str]  # contact policies this send went over (it is recorded all the same)
    over_budget: bool


class ContactsOut(BaseModel):
    received: int
    recorded: int
    contacts: list[SendOut]


class HistoryEntryOut(BaseModel):
    kind: str
    id: str
    at: datetime
    channel: str
    direction: str
    offer_id: str
    group: str | None
    outcome: str
    decision_id: str | None
    details: dict[str, Any] = {}


class HistoryOut(BaseModel):
    customer_id: str
    entries: list[HistoryEntryOut]


class CatalogueOfferOut(BaseModel):
    offer_id: str
    name: str
    group: str
    product: str
    channels: list[str]
    active: bool
    tags: list[str]
    value: str
    lever: float
    budget: dict[str, Any] | None
    rules: list[dict[str, str]]


class OffersOut(BaseModel):
    catalogue_version: str
    offers: list[CatalogueOfferOut]


class ErrorOut(BaseModel):
    """Every error answer: `error` is one of validation, not_found, too_large, unavailable, unauthorized,
    forbidden, internal; `detail` says why (a list of fields for validation and too_large)."""

    error: str
    detail: Any = None


class ReadyOut(BaseModel):
    ready: bool
    checks: dict[str, Any]
