"""Cold start: a per-offer Beta posterior learnt from the first responses, while serving.

Each offer's acceptance rate has a Beta prior worth `strength` pseudo-contacts at its catalogue `prior`
(an offer without its own prior inherits its group's at loading), updated by the offer's own presented
and accepted counts from the contact history:

    alpha = prior x strength + accepted,   beta = (1 - prior) x strength + presented - accepted

`LearningScorer` scores with the model where the model knows the offer, and with the posterior mean where
it does not (a new offer) or when there is no model at all (day one). It also tells the arbitration how
sure each score is (`concentrations`): Thompson sampling then draws a posterior offer from its own Beta,
wide while it has little data, so that a new offer gets tried and stops being tried once it is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from decisioning.catalogue import Offer
    from decisioning.ports import Scorer
    from decisioning.types import Context, CustomerFeatures

PRIOR_STRENGTH = 20.0


@dataclass(frozen=True, slots=True)
class OfferPosteriors:
    """Beta posteriors of every offer's acceptance rate; `counts` maps an offer id to (accepted, presented).

    >>> from types import SimpleNamespace as Offer
    >>> OfferPosteriors({"a": (30, 80)}, strength=20).mean(Offer(id="a", prior=0.1))
    0.32
    """

    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    strength: float = PRIOR_STRENGTH

    def __post_init__(self) -> None:
        if self.strength <= 0:
            raise ValueError("strength must be positive")

    def alpha_beta(self, offer: Offer) -> tuple[float, float]:
        accepted, presented = self.counts.get(offer.id, (0, 0))
        accepted = min(accepted, presented)  # a response without its contact must not push the rate over 1
        return offer.prior * self.strength + accepted, (1 - offer.prior) * self.strength + presented - accepted

    def mean(self, offer: Offer) -> float:
        alpha, beta = self.alpha_beta(offer)
        return alpha / (alpha + beta)

    def concentration(self, offer: Offer) -> float:
        """alpha + beta: the pseudo-contacts behind the mean (the Beta's width shrinks as it grows)."""
        return sum(self.alpha_beta(offer))


class LearningScorer:
    """The model where it knows the offer, the offer's Beta posterior elsewhere (new offers, no model).

    >>> from types import SimpleNamespace as Offer
    >>> scorer = LearningScorer(None, OfferPosteriors({"a": (5, 10)}, strength=10))
    >>> scorer.score(None, None, [Offer(id="a", prior=0.1)]).round(3).tolist(), scorer.version
    ([0.3], 'prior-beta')
    """

    def __init__(self, model: Scorer | None, posteriors: OfferPosteriors | None = None) -> None:
        self.model = model
        self.posteriors = posteriors or OfferPosteriors()
        fallback = "prior-beta" if self.posteriors.counts else "prior"
        self.version = model.version if model is not None else fallback

    def with_posteriors(self, posteriors: OfferPosteriors) -> LearningScorer:
        """The same model with fresher counts (a new object: decisions in flight keep the old one)."""
        return LearningScorer(self.model, posteriors)

    def for_customer(self, customer_id: str) -> LearningScorer:
        """The champion or the challenger for this customer, with the same posteriors; logs its version."""
        if self.model is None:
            return self
        chosen = self.model.for_customer(customer_id)
        return self if chosen is self.model else LearningScorer(chosen, self.posteriors)

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        """Response probabilities, one per offer, in the order given."""
        model = self.model.for_customer(customer.customer_id) if self.model is not None else None
        known = _known(model, offers)
        if known.all() and len(offers):
            return model.score(customer, context, offers)  # type: ignore[union-attr]  # the hot path: no posterior
        scores = np.empty(len(offers), dtype=float)
        if known.any():
            scores[known] = np.asarray(model.score(customer, context, offers), dtype=float)[known]  # type: ignore[union-attr]
        for i in np.flatnonzero(~known):
            scores[i] = self.posteriors.mean(offers[i])
        return scores

    def concentrations(self, offers: Sequence[Offer]) -> list[float | None]:
        """Per offer: the posterior's alpha + beta where the posterior scored it, None where the model did
        (the arbitration then uses its configured `thompson_strength` around the model's estimate)."""
        known = _known(self.model, offers)
        if known.all():
            return [None] * len(offers)  # the hot path with a model that knows every offer
        return [None if k else self.posteriors.concentration(o) for o, k in zip(offers, known, strict=True)]


def _known(model: Scorer | None, offers: Sequence[Offer]) -> np.ndarray:
    """Which offers the model was trained on. A scorer that cannot say (no model, the prior scorer, a
    champion/challenger split not yet resolved to one customer's model) knows none of them."""
    known: frozenset[str] | None = getattr(model, "known_offer_ids", None)
    if known is None:
        return np.zeros(len(offers), dtype=bool)
    ids = [o.id for o in offers]
    if known.issuperset(ids):  # the usual case, twice per decision: ~3 µs for 100 offers
        return np.ones(len(ids), dtype=bool)
    return np.fromiter((i in known for i in ids), dtype=bool, count=len(ids))
