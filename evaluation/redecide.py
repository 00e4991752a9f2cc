"""Make a logged decision again with a policy (a catalogue and a scorer), the way the server makes one.

The inputs are the decision's own: its stored feature values (decoded by the policy's feature schema,
which must be the one they were stored in), its request context and time, and the customer's history
summary rebuilt from the history as the service knew it at that moment (the decision's own contacts
excepted). The pure core decides (`decisioning.engine.consider`, with explanations), and the arbitration
says how likely it was to choose each offer at each of the logged ranks, given the logged offers above
(`decisioning.arbitration.choice_probabilities`).

What is not replayed: volume budgets (the logged counts are the logging policy's, so the replay reserves
none), and the number of offers asked, which the history does not keep: the replay asks for as many as
the logged decision presented (at least one).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from decisioning.arbitration import choice_probabilities
from decisioning.catalogue import Catalogue
from decisioning.engine import Decision, DecisionRequest, consider
from decisioning.ports import Scorer
from decisioning.summary import HistorySummary
from decisioning.types import CONTACT_OUTCOMES, Context, CustomerFeatures, Outcome
from evaluation.history_reads import KnownEvent, LoggedDecision

NO_FEATURES = "no_feature_snapshot"
OTHER_SCHEMA = "other_feature_schema"


@dataclass(frozen=True)
class Policy:
    """What decides: a catalogue and a scorer (a model behind the cold-start posteriors)."""

    catalogue: Catalogue
    scorer: Scorer


@dataclass(frozen=True)
class Redecided:
    """A logged decision made again: the new decision, and per logged rank the probability of every offer."""

    decision: Decision
    distributions: tuple[Mapping[str, float], ...]
    values: Mapping[str, float]  # offer id -> its value for this customer, per the policy's catalogue


class CustomerHistories:
    """Each customer's history summary as the service knew it at a given moment."""

    def __init__(self, events: Mapping[str, list[KnownEvent]]) -> None:
        self._events = events
        self._known = {customer: [e.known_at for e in known] for customer, known in events.items()}

    def summary_at(self, decision: LoggedDecision) -> HistorySummary:
        """The summary before `decision`: what was known at its time, its own contacts excepted."""
        known = self._events.get(decision.customer_id, [])
        end = bisect.bisect_right(self._known.get(decision.customer_id, []), decision.at)
        events = [
            k.event
            for k in known[:end]
            if not (k.event.decision_id == decision.decision_id and k.event.outcome in _OWN_OUTCOMES)
        ]
        return HistorySummary().with_events(events, now=decision.at)


_OWN_OUTCOMES = CONTACT_OUTCOMES | {Outcome.SELECTED}


def redecide(policy: Policy, logged: LoggedDecision, summary: HistorySummary) -> Redecided | str:
    """The decision made again by `policy`, or why it cannot be (`NO_FEATURES`, `OTHER_SCHEMA`)."""
    if logged.features is None:
        return NO_FEATURES
    catalogue = policy.catalogue
    if logged.feature_schema != catalogue.feature_schema:
        return OTHER_SCHEMA
    names = [spec.name for spec in catalogue.features]
    customer = CustomerFeatures(logged.customer_id, dict(zip(names, logged.features, strict=True)))
    context = Context(
        logged.channel, logged.at, logged.placement, logged.intent, MappingProxyType(dict(logged.context))
    )
    request = DecisionRequest(logged.decision_id, customer, context, max(1, len(logged.offers)), explain=True)
    considered = consider(catalogue, request, summary, _for_customer(policy.scorer, logged.customer_id))
    distributions = choice_probabilities(
        considered.candidates,
        logged_path(logged),
        catalogue.settings,
        control=considered.control,
        headroom=considered.headroom,
        seed=considered.seed,
    )
    values = {c.offer.id: c.value for c in considered.candidates}
    return Redecided(considered.decision, tuple(distributions), values)


def logged_path(logged: LoggedDecision) -> Sequence[str]:
    """The logged decision's offers, by rank."""
    return [o.offer_id for o in sorted(logged.offers, key=lambda o: o.rank)]


def _for_customer(scorer: Scorer, customer_id: str) -> Scorer:
    # As the service does: the champion or the challenger for this customer, by a stable hash.
    choose = getattr(scorer, "for_customer", None)
    return choose(customer_id) if choose is not None else scorer
