"""`PriorScorer`: the scorer used when no model is trained yet.

Each offer scores its catalogue `prior`. Given response counts, it scores the mean of the Beta posterior
whose prior is worth `strength` pseudo-contacts at the catalogue's rate: a new offer starts at its prior
and moves toward its observed rate as contacts accumulate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from decisioning.catalogue import Offer
    from decisioning.types import Context, CustomerFeatures


class PriorScorer:
    """Scores offers by their prior, or by a Beta posterior when counts are given.

    `counts` maps an offer id to (positives, contacts).

    >>> from types import SimpleNamespace as Offer
    >>> PriorScorer().score(None, None, [Offer(id="a", prior=0.05)])
    array([0.05])
    >>> PriorScorer({"a": (30, 100)}, strength=100).score(None, None, [Offer(id="a", prior=0.1)])
    array([0.2])
    """

    def __init__(self, counts: Mapping[str, tuple[int, int]] | None = None, strength: float = 20.0) -> None:
        if strength <= 0:
            raise ValueError("strength must be positive")
        self.counts = dict(counts or {})
        self.strength = strength
        self.version = "prior-beta" if self.counts else "prior"

    def for_customer(self, customer_id: str) -> PriorScorer:
        """The scorer that scores this customer: this one (see `ChampionChallengerScorer`)."""
        return self

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        """Response probabilities, one per offer, in the order given (the same for every customer)."""
        return np.array([self.propensity(o) for o in offers], dtype=float)

    def propensity(self, offer: Offer) -> float:
        positives, contacts = self.counts.get(offer.id, (0, 0))
        return (offer.prior * self.strength + positives) / (self.strength + contacts)
