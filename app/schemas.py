"""Request and response bodies of the HTTP API (pydantic v2), validated strictly at the edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_]+$")]
Scalar = str | int | float | bool | None
Attributes = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Scalar], Field(max_length=50)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DecisionContext(Strict):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    intent: Name | None = None
    page: Annotated[str, StringConstraints(max_length=256)] | None = None
    device: Annotated[str, StringConstraints(max_length=64)] | None = None


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
    notes: list[str] = []
    explanation: list[dict[str, Any]] | None = None


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


class EventOut(BaseModel):
    customer_id: str
    type: str
    updated: list[str]


class ContactIn(Strict):
    contact_id: Identifier
    customer_id: Identifier
    offer_id: Identifier
    channel: Name
    at: datetime | None = None
    treatment: Annotated[str, StringConstraints(max_length=256)] | None = None
    campaign: Identifier | None = None


class ContactsIn(Strict):
    contacts: Annotated[list[ContactIn], Field(min_length=1, max_length=10_000)]


class ContactsOut(BaseModel):
    received: int
    recorded: int


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
    error: str
    detail: Any = None
