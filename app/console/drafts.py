"""Draft copies of the serving catalogue with one change: an offer's lever, a contact policy's threshold
(its cap), or an offer's volume budget. The draft is the compiled catalogue with that one field replaced
(`dataclasses.replace`), so everything else is exactly what the service serves; its version says it is a
draft of that version.

>>> from policies.loader import load_catalogue
>>> served = load_catalogue("tests/fixtures/stack_catalogue")
>>> draft = draft_of(served, Change("lever", "savings_plus", 3.0))
>>> draft.offer("savings_plus").lever, served.offer("savings_plus").lever
(3.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Literal

from decisioning.catalogue import Budget, BudgetPeriod, Catalogue

Kind = Literal["lever", "cap", "budget"]
KINDS: tuple[Kind, ...] = ("lever", "cap", "budget")
MAX_LEVER = 1000.0
MAX_COUNT = 10_000_000


class DraftRefused(ValueError):
    """A change the catalogue cannot take (unknown offer or policy, a value out of range)."""


@dataclass(frozen=True)
class Change:
    """`kind` of `target` (an offer id; a policy id for a cap) set to `value` (None: no budget)."""

    kind: Kind
    target: str
    value: float | None

    def describe(self, catalogue: Catalogue) -> str:
        """`lever of card_cashback: 1.1 → 1.5`, in the served catalogue's terms."""
        return f"{self.kind} of {self.target}: {_current(catalogue, self)} → {_shown(self)}"


def draft_of(catalogue: Catalogue, change: Change) -> Catalogue:
    """The served catalogue with `change` applied; DraftRefused when it cannot apply."""
    if change.kind == "cap":
        return _with_cap(catalogue, change)
    offer = catalogue.offer(change.target)
    if offer is None:
        raise DraftRefused(f"offer: unknown offer '{change.target}'")
    if change.kind == "lever":
        value = _positive(change.value, MAX_LEVER, "lever")
        edited = dataclasses.replace(offer, lever=value)
    else:
        edited = dataclasses.replace(offer, budget=_budget(change.value, offer.budget))
    offers = tuple(edited if o.id == offer.id else o for o in catalogue.offers)
    return _versioned(dataclasses.replace(catalogue, offers=offers), catalogue, change)


def _with_cap(catalogue: Catalogue, change: Change) -> Catalogue:
    found = [p for p in catalogue.policies if p.id == change.target]
    if not found:
        raise DraftRefused(f"policy: unknown contact policy '{change.target}'")
    threshold = int(_positive(change.value, MAX_COUNT, "threshold"))
    policies = tuple(dataclasses.replace(p, threshold=threshold) if p.id == change.target else p
                     for p in catalogue.policies)  # fmt: skip
    return _versioned(dataclasses.replace(catalogue, policies=policies), catalogue, change)


def _budget(value: float | None, current: Budget | None) -> Budget | None:
    if value is None:
        return None
    period = current.period if current is not None else BudgetPeriod.DAY
    return Budget(int(_positive(value, MAX_COUNT, "budget")), period)


def _positive(value: float | None, highest: float, name: str) -> float:
    if value is None or not math.isfinite(value) or not 0 < value <= highest:
        raise DraftRefused(f"{name}: a number above 0 and at most {highest:g}")
    return value


def _versioned(draft: Catalogue, served: Catalogue, change: Change) -> Catalogue:
    tag = hashlib.blake2b(repr(change).encode(), digest_size=3).hexdigest()
    return dataclasses.replace(draft, version=f"{served.version}+draft-{tag}")


def _current(catalogue: Catalogue, change: Change) -> str:
    if change.kind == "cap":
        return next((str(p.threshold) for p in catalogue.policies if p.id == change.target), "?")
    offer = catalogue.offer(change.target)
    if offer is None:
        return "?"
    if change.kind == "lever":
        return f"{offer.lever:g}"
    return "no budget" if offer.budget is None else f"{offer.budget.limit} per {offer.budget.period.value}"


def _shown(change: Change) -> str:
    if change.value is None:
        return "no budget"
    return f"{change.value:g}" + (" per period" if change.kind == "budget" else "")
