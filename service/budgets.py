"""Volume budgets at decision time: which budget a presentation draws on, reserving and giving back units.

A budget is shared by every replica (the `BudgetCounter` port): a decision reserves one unit of each chosen
offer's budget before it is recorded, and gives them back when it is not delivered. Each replica also
remembers, for a few seconds, the budgets it found used up, so that the next decisions drop those offers
without a round trip; the memory is short because units come back (`not_displayed`, an undone decision,
another replica's release) and a new period starts afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from decisioning.catalogue import BudgetPeriod, Catalogue, Offer
from decisioning.engine import Decision
from decisioning.ports import BudgetCounter
from service.metrics import Metrics

EXHAUSTED_MEMORY_SECONDS = 5.0
DAY_BUDGET_TTL_SECONDS = 2 * 86_400.0  # a day's counter outlives its day, then cleans itself up


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of reserving a decision's budgets: the keys taken, or the offers that found none left."""

    keys: tuple[str, ...] = ()
    exhausted: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.exhausted


class BudgetReservations:
    """Reserve and release the budget units of decisions, on the shared counter.

    >>> budgets = BudgetReservations(catalogue, InMemoryBudgetCounter(), Metrics())  # doctest: +SKIP
    >>> reservation = await budgets.reserve(decision)                                 # doctest: +SKIP
    """

    def __init__(
        self,
        catalogue: Catalogue,
        counter: BudgetCounter,
        metrics: Metrics,
        *,
        memory_seconds: float = EXHAUSTED_MEMORY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalogue = catalogue
        self.counter = counter
        self.metrics = metrics
        self._memory = memory_seconds
        self._monotonic = monotonic
        self._zone = ZoneInfo(catalogue.settings.timezone)
        self._budgeted = tuple(o for o in catalogue.offers if o.budget is not None)
        self._exhausted: dict[str, float] = {}  # budget key -> until when (monotonic) it is taken as used up

    def key(self, offer: Offer, at: float) -> str:
        """The counter an offer's presentation at `at` draws on: per campaign, or per local day."""
        if offer.budget is None:
            return ""
        if offer.budget.period is BudgetPeriod.CAMPAIGN:
            return f"budget:{offer.id}:campaign"
        return f"budget:{offer.id}:{datetime.fromtimestamp(at, self._zone).date().isoformat()}"

    def known_exhausted(self, now: float) -> frozenset[str]:
        """Offers whose budget this replica found used up within the last few seconds."""
        if not self._exhausted:
            return frozenset()
        self._forget_expired()
        return frozenset(o.id for o in self._budgeted if self.key(o, now) in self._exhausted)

    async def reserve(self, decision: Decision) -> Reservation:
        """One unit of every chosen offer's budget; on any failure, give back what this call took."""
        taken: list[str] = []
        exhausted: set[str] = set()
        for presented in decision.offers:
            offer = presented.offer
            if offer.budget is None:
                continue
            key = self.key(offer, decision.context.now)
            if await self.counter.reserve(key, offer.budget.limit, _ttl(offer)):
                taken.append(key)
            else:
                exhausted.add(offer.id)
                self._remember_exhausted(key, offer.id)
        if exhausted:
            await self.release(taken)
            return Reservation(exhausted=frozenset(exhausted))
        return Reservation(keys=tuple(taken))

    async def reserve_one(self, offer: Offer, at: float) -> bool:
        """One unit of `offer`'s budget for a contact at `at` (True when the offer has no budget)."""
        if offer.budget is None:
            return True
        key = self.key(offer, at)
        if await self.counter.reserve(key, offer.budget.limit, _ttl(offer)):
            return True
        self._remember_exhausted(key, offer.id)
        return False

    async def release(self, keys: Iterable[str]) -> None:
        """Give units back (a decision that was not delivered, a presentation that was not displayed)."""
        for key in keys:
            await self.counter.release(key)
            self._exhausted.pop(key, None)  # a unit is free again: offer it at once

    async def give_back(self, offer: Offer, at: float) -> None:
        """Return the unit a contact of `offer` at `at` took, if the offer has a budget."""
        if offer.budget is not None:
            await self.release([self.key(offer, at)])

    def _remember_exhausted(self, key: str, offer_id: str) -> None:
        self._exhausted[key] = self._monotonic() + self._memory
        self.metrics.budget_rejections.labels(offer_id).inc()

    def _forget_expired(self) -> None:
        now = self._monotonic()
        for key in [k for k, until in self._exhausted.items() if until <= now]:
            del self._exhausted[key]


def _ttl(offer: Offer) -> float | None:
    return DAY_BUDGET_TTL_SECONDS if offer.budget is not None and offer.budget.period is BudgetPeriod.DAY else None

