"""Degraded decisions: when Redis (features, summaries, budgets, locks) or the history's reads are
unreachable, decide anyway from what needs none of them, and record it like any other decision.

The decision comes from `decisioning.fallback` (the batch's prescored offers, else the catalogue's default
offers; never an offer with a volume budget) and is made without the customer's lock: no per-customer
cap applies to it. It is still recorded durably before it is returned; when the history cannot take it
either, the caller gets 503 (`Unavailable`), as on the live path.
"""

from __future__ import annotations

import logging

from decisioning.catalogue import Catalogue
from decisioning.engine import Decision
from decisioning.fallback import degraded_decision
from decisioning.ports import PrescoredFallback, PrescoredOffer, Scorer, StoreUnavailable
from decisioning.types import Context
from service.budgets import Reservation
from service.commands import Decide
from service.ids import random_decision_id
from service.metrics import Metrics
from service.recorder import DecisionRecorder

log = logging.getLogger("nbo.service")


class DegradedPath:
    """Makes and records degraded decisions.

    >>> decision, stored = await degraded.decide(command, now, reason="redis_unavailable")  # doctest: +SKIP
    """

    def __init__(
        self,
        catalogue: Catalogue,
        scorer: Scorer,
        fallback: PrescoredFallback | None,
        recorder: DecisionRecorder,
        metrics: Metrics,
    ) -> None:
        self.catalogue = catalogue
        self.scorer = scorer
        self.fallback = fallback
        self.recorder = recorder
        self.metrics = metrics

    async def decide(self, command: Decide, now: float, context: Context, reason: str) -> tuple[Decision, bool]:
        """(decision, stored): `stored` is False when another attempt of the same request was stored first."""
        prescored = await self._prescored(command)
        decision = degraded_decision(
            self.catalogue,
            random_decision_id(),
            command.customer_id,
            context,
            prescored=prescored,
            max_offers=command.max_offers,
            model_version=self.scorer.for_customer(command.customer_id).version,
            reason=reason,
        )
        stored = await self.recorder.record(decision, Reservation(), command.request_id)
        if stored:
            self.metrics.degraded.labels(command.channel, reason).inc()
        return decision, stored

    async def _prescored(self, command: Decide) -> list[PrescoredOffer]:
        if self.fallback is None:
            return []
        try:
            return await self.fallback.top(command.customer_id, command.channel, command.max_offers)
        except StoreUnavailable:
            return []  # the batch's list lives in Redis too: the catalogue's defaults it is
