"""The catalogue in words a marketer reads: contact policies, budgets, ages of data.

>>> from decisioning.catalogue import ContactPolicy, Level, Window
>>> from decisioning.types import Outcome
>>> cap = ContactPolicy("offer_cap_7d", frozenset({Outcome.PRESENTED}), Level.OFFER, Window(seconds=7 * 86_400),
...                     3, Level.OFFER)
>>> describe_policy(cap)
'At most 3 presentations of an offer per 7 days, in every channel.'
"""

from __future__ import annotations

from decisioning.catalogue import Budget, ContactPolicy, Level, Window, WindowKind
from decisioning.types import CONTACT_OUTCOMES, Outcome

# The plural noun of each counted outcome, in a fixed order so that the sentence is stable.
NOUNS = {
    Outcome.PRESENTED: "presentations",
    Outcome.SELECTED: "outbound selections",
    Outcome.SENT: "outbound sends",
    Outcome.CLICKED: "clicks",
    Outcome.ACCEPTED: "acceptances",
    Outcome.DECLINED: "declines",
    Outcome.IGNORED: "ignored contacts",
    Outcome.NOT_DISPLAYED: "not displayed contacts",
}
COUNTED_AT = {
    Level.OFFER: "of an offer",
    Level.GROUP: "of a group's offers",
    Level.ALL: "per customer (all marketing offers together)",
}
SUPPRESSED = {Level.OFFER: "the offer", Level.GROUP: "the whole group", Level.ALL: "every marketing offer"}


def describe_policy(policy: ContactPolicy) -> str:
    """One sentence that says exactly what the policy counts and what it does (see the module doctest)."""
    counted = f"{policy.threshold} {_counted(policy)} {COUNTED_AT[policy.level]}"
    if _is_cap(policy):
        sentence = f"At most {counted} {_per(policy.window)}"
    else:
        sentence = f"After {counted} {_within(policy.window)}, suppress {SUPPRESSED[policy.suppress]} {_effect(policy)}"
    return sentence + _scope(policy) + "."


def _counted(policy: ContactPolicy) -> str:
    nouns = [noun for outcome, noun in NOUNS.items() if outcome in policy.outcomes]
    text = " or ".join(nouns)
    return text.removesuffix("s") if policy.threshold == 1 and len(nouns) == 1 else text


def _is_cap(policy: ContactPolicy) -> bool:
    """A cap on contacts lifted as the window moves on: "at most K per window"."""
    return policy.suppress_days is None and policy.suppress is policy.level and policy.outcomes <= CONTACT_OUTCOMES


def _per(window: Window) -> str:
    if window.kind is WindowKind.CALENDAR:
        return f"per calendar {window.unit}"
    return "per " + _span(window)


def _within(window: Window) -> str:
    if window.kind is WindowKind.CALENDAR:
        return f"in the same calendar {window.unit}"
    return "within " + _span(window)


def _span(window: Window) -> str:
    seconds = window.seconds or 0.0
    if seconds >= 2 * 86_400 and seconds % 86_400 == 0:
        return _plural(seconds / 86_400, "day")
    return _plural(seconds / 3600, "hour")


def _effect(policy: ContactPolicy) -> str:
    if policy.suppress_days is not None:
        return f"for {_plural(policy.suppress_days, 'day')}"
    return "while they are in the window"


def _scope(policy: ContactPolicy) -> str:
    parts = [f"in {' and '.join(sorted(policy.channels))}" if policy.channels else "in every channel"]
    if policy.offers:
        parts.append(_only("offer", policy.offers))
    if policy.groups:
        parts.append(_only("group", policy.groups))
    if policy.segment is not None:
        parts.append(f"only for customers where {policy.segment.text}")
    return ", " + ", ".join(parts)


def _only(kind: str, names: frozenset[str]) -> str:
    return f"for the {kind}{'s' if len(names) > 1 else ''} {', '.join(sorted(names))}"


def describe_budget(budget: Budget | None) -> str:
    """`at most 500 presentations per day` (per local day of the catalogue), or `no volume budget`.

    >>> from decisioning.catalogue import Budget
    >>> describe_budget(Budget(500))
    'at most 500 presentations per day'
    """
    if budget is None:
        return "no volume budget"
    return f"at most {budget.limit} presentations per {budget.period.value}"


def describe_age(seconds: float | None) -> str:
    """How old a value is, rounded for a person: `just now`, `5 min`, `3 h`, `12 days`, `never written`.

    >>> describe_age(90.0), describe_age(5 * 3600.0), describe_age(None)
    ('2 min', '5 h', 'never written')
    """
    if seconds is None:
        return "never written"
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 2 * 86_400:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86_400)} days"


def _plural(amount: float, unit: str) -> str:
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")
