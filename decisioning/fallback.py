"""Degraded decisions: what to show when the live path (features, summary, budgets, locks) is unreachable.

A degraded decision never reads the customer's features or contact history, so it applies no customer rule
and no contact policy. It shows, in this order:

1. the offers the overnight batch prescored for the customer and channel (`PrescoredFallback`), unless the
   customer is in the control group (a stable hash: the same answer as on the live path);
2. else the catalogue's default offers: the non-marketing offers (service messages, `marketing: false`),
   which no marketing cap limits anyway.

Either way only offers that are active, have a treatment for the channel and have **no volume budget** are
shown: a budget is shared by all replicas and cannot be reserved while its counter is unreachable.

>>> decision = degraded_decision(catalogue, "d-1", "c-000042", context, prescored=[], max_offers=1,
...                              model_version="m1", reason="cache_unavailable")   # doctest: +SKIP
>>> decision.degraded
'cache_unavailable'
"""

from __future__ import annotations

from collections.abc import Sequence

from decisioning.arbitration import in_control_group
from decisioning.catalogue import Catalogue, Offer
from decisioning.engine import Decision, PresentedOffer
from decisioning.ports import PrescoredOffer
from decisioning.types import Context, Direction

PRESCORED, DEFAULTS = "prescored", "defaults"


def showable(offer: Offer, channel: str, now: float) -> bool:
    """Whether a degraded decision may show the offer: active, in the channel, without a budget."""
    return offer.is_active(now) and channel in offer.treatments and offer.budget is None


def default_offers(catalogue: Catalogue, channel: str, now: float) -> list[Offer]:
    """The catalogue's default offers for a channel: non-marketing, showable, in catalogue order."""
    return [o for o in catalogue.offers if not o.marketing and showable(o, channel, now)]


def fallback_offers(
    catalogue: Catalogue, context: Context, prescored: Sequence[PrescoredOffer], max_offers: int, control: bool
) -> tuple[list[tuple[Offer, float]], str]:
    """(offers with their priority, source): the prescored offers that are still showable, else defaults."""
    by_id = {o.id: o for o in catalogue.offers}
    if not control:
        chosen = [
            (by_id[p.offer_id], p.priority)
            for p in prescored
            if p.offer_id in by_id and showable(by_id[p.offer_id], context.channel, context.now)
        ]
        if chosen:
            return chosen[:max_offers], PRESCORED
    defaults = default_offers(catalogue, context.channel, context.now)
    return [(o, 0.0) for o in defaults[:max_offers]], DEFAULTS


def degraded_decision(
    catalogue: Catalogue,
    decision_id: str,
    customer_id: str,
    context: Context,
    *,
    prescored: Sequence[PrescoredOffer],
    max_offers: int,
    model_version: str,
    reason: str,
) -> Decision:
    """A decision made without the customer's features, history or budgets; `degraded` holds `reason`."""
    control = in_control_group(customer_id, catalogue.settings, context.now)
    chosen, source = fallback_offers(catalogue, context, prescored, max_offers, control)
    offers = tuple(
        _presented(offer, rank, priority, context.channel) for rank, (offer, priority) in enumerate(chosen, 1)
    )
    return Decision(
        decision_id=decision_id,
        customer_id=customer_id,
        context=context,
        offers=offers,
        control_group=control,
        mode=f"degraded:{source}",
        catalogue_version=catalogue.version,
        model_version=model_version,
        direction=Direction.OUTBOUND if catalogue.is_outbound(context.channel) else Direction.INBOUND,
        notes=(f"degraded ({reason}): {source} offers, no customer rules, contact policies or budgets applied",),
        degraded=reason,
    )


def _presented(offer: Offer, rank: int, priority: float, channel: str) -> PresentedOffer:
    # No model ran: the propensity is the offer's prior, and the choice was deterministic.
    return PresentedOffer(
        offer, offer.treatments[channel], rank, offer.prior, 0.0, offer.lever, 1.0, 1.0, priority, 1.0
    )
