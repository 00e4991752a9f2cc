"""Commands: what a caller asks of the service, in the core's language (no HTTP bodies).

The web layer builds them from validated request bodies; a batch job or the simulator builds them
directly. Times are epoch seconds; `None` means "now" on the service's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from decisioning.types import FeatureValue, Outcome


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decide:
    """Decide the best offers for one contact.

    >>> Decide("c-000042", "web", placement="home_hero", max_offers=2).max_offers
    2
    """

    customer_id: str
    channel: str
    placement: str | None = None
    max_offers: int = 1
    intent: str | None = None
    context: Mapping[str, FeatureValue] = field(default_factory=_empty)  # page, device... (scalars)
    explain: bool = False
    request_id: str | None = None  # a retry with the same id gets the same decision back


@dataclass(frozen=True, slots=True)
class Respond:
    """Record a customer's answer to an offer, attributed to its decision (or to the latest contact)."""

    customer_id: str
    offer_id: str
    channel: str
    outcome: Outcome
    decision_id: str | None = None
    at: float | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ApplyEvent:
    """Apply a customer event (card declined, salary received...) to the real-time features."""

    customer_id: str
    type: str
    attributes: Mapping[str, Any] = field(default_factory=_empty)
    at: float | None = None


@dataclass(frozen=True, slots=True)
class ReportSend:
    """An outbound contact the campaign tool sent: it confirms an outbound decision's selection when it
    names `decision_id`, else it is a send decided elsewhere (checked against the same policies)."""

    contact_id: str
    customer_id: str
    offer_id: str
    channel: str
    at: float | None = None
    treatment: str | None = None
    campaign: str | None = None
    decision_id: str | None = None
