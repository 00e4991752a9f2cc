"""The decision, step by step: eligibility, contact policies, scoring, arbitration, explanation.

`decide` is pure: it receives the catalogue, the customer's features, the request context, the customer's
history summary, a scorer and the budgets known to be exhausted, and returns a `Decision` value. Loading,
budget reservation and logging are the application layer's job (service/decisions.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from decisioning.arbitration import ArbitrationResult, Candidate, Selection, arbitrate, in_control_group
from decisioning.bits import indices
from decisioning.catalogue import (
    ArbitrationSettings,
    Catalogue,
    ConsistencyMode,
    Offer,
    Rule,
    Treatment,
    feature_vector,
)
from decisioning.contact_policy import Headroom, PolicyOutcome, Suppression, evaluate_plan
from decisioning.explanation import CandidateExplanation, RuleFailure, Stage
from decisioning.plan import plan_for
from decisioning.ports import Scorer
from decisioning.records import ContactRecord, DecisionRecord
from decisioning.rules import RuleEnv, RuleError
from decisioning.summary import HistorySummary, HistoryView
from decisioning.types import DAY, Context, CustomerFeatures, Direction, FeatureValue, Outcome

# The values a decision makes once or a few times each are named tuples, not frozen dataclasses: as
# immutable, and ~0.25 µs per field cheaper to build (a frozen dataclass sets each field through
# `object.__setattr__`).


class DecisionRequest(NamedTuple):
    decision_id: str
    customer: CustomerFeatures
    context: Context
    max_offers: int = 1
    explain: bool = False


class PresentedOffer(NamedTuple):
    offer: Offer
    treatment: Treatment
    rank: int
    propensity: float
    value: float
    lever: float
    context_weight: float
    boost: float
    priority: float
    selection_probability: float


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    customer_id: str
    context: Context
    offers: tuple[PresentedOffer, ...]
    control_group: bool
    mode: str
    catalogue_version: str
    model_version: str
    direction: Direction = Direction.INBOUND  # outbound: the offers are selections for a campaign
    suppressions: tuple[Suppression, ...] = ()
    explanations: tuple[CandidateExplanation, ...] = ()  # every candidate, when asked
    scored: tuple[tuple[str, float, float], ...] = ()  # (offer id, propensity, priority) of every candidate
    notes: tuple[str, ...] = field(default=())  # data quality and rule errors, in words
    # The validated feature values decided on, in the feature schema's order, and the schema's version:
    # kept with the record (see `DecisionRecord.features`).
    features: tuple[FeatureValue, ...] | None = None
    feature_schema: str | None = None
    degraded: str | None = None  # why the live path was skipped (a store down): see decisioning/fallback.py

    def to_record(self, request_id: str | None = None) -> DecisionRecord:
        """The rows the contact history keeps for this decision.

        An inbound decision presents its offers; an outbound one selects them, and the campaign tool's
        confirmation later records the send (`POST /v1/contacts` with the decision id).
        """
        ctx = self.context
        outcome = Outcome.SELECTED if self.direction is Direction.OUTBOUND else Outcome.PRESENTED
        contacts = tuple(
            ContactRecord(
                contact_id=self.decision_id,
                customer_id=self.customer_id,
                at=ctx.now,
                channel=ctx.channel,
                direction=self.direction,
                offer_id=p.offer.id,
                group=p.offer.group,
                outcome=outcome,
                treatment=p.treatment.title,
                placement=ctx.placement,
                rank=p.rank,
                propensity=p.propensity,
                value=p.value,
                priority=p.priority,
                selection_probability=p.selection_probability,
                model_version=self.model_version,
                catalogue_version=self.catalogue_version,
            )
            for p in self.offers
        )
        return DecisionRecord(
            decision_id=self.decision_id,
            customer_id=self.customer_id,
            at=ctx.now,
            channel=ctx.channel,
            placement=ctx.placement,
            intent=ctx.intent,
            control_group=self.control_group,
            model_version=self.model_version,
            catalogue_version=self.catalogue_version,
            contacts=contacts,
            context=dict(ctx.attributes),
            request_id=request_id,
            candidates=tuple({"offer_id": o, "propensity": p, "priority": q} for o, p, q in self.scored),
            features=self.features,
            feature_schema=self.feature_schema,
        )


# Enum members read once (a lookup through the enum's metaclass costs ~0.15 µs inside a function).
_CONSISTENCY_OFF, _CONSISTENCY_PIN = ConsistencyMode.OFF, ConsistencyMode.PIN
_INBOUND, _OUTBOUND = Direction.INBOUND, Direction.OUTBOUND


def _no_laps(stage: str) -> None:
    pass


def decide(
    catalogue: Catalogue,
    request: DecisionRequest,
    summary: HistorySummary,
    scorer: Scorer,
    *,
    exhausted_budgets: frozenset[str] = frozenset(),
    prefiltered: int | None = None,
    view: HistoryView | None = None,
    laps: Callable[[str], None] = _no_laps,
) -> Decision:
    """Decide which offers to present to one customer now, and why.

    `prefiltered`: the bits (`decisioning.plan`) of the offers that already passed the active-date,
    channel and rule filters, computed for many customers at once with the vectorised rules (the
    overnight batch); the filters are then not run again here. None: run them (the online path).
    `view`: the summary's `HistoryView` at the request's time, when the caller has built it already (the
    batch shares one between all the customers with an empty history); None: built here.
    `laps`: called with each stage's name as it ends (rules, policies, scoring, arbitration), for the
    service's stage timers.

    >>> request = DecisionRequest("d-1", customer, Context("web", now))  # doctest: +SKIP
    >>> decision = decide(catalogue, request, summary, scorer)  # doctest: +SKIP
    >>> [p.offer.id for p in decision.offers]  # doctest: +SKIP
    ['card_gold']
    """
    return _decide(catalogue, request, summary, scorer, exhausted_budgets, prefiltered, view, laps).decision


@dataclass(frozen=True, slots=True)
class Considered:
    """A decision with what its arbitration saw: the scored candidates, the control flag, the contact-policy
    headroom and the arbitration's seed. Offline evaluation (`evaluation/`) asks the arbitration how likely
    each offer was at each rank from these (`decisioning.arbitration.choice_probabilities`)."""

    decision: Decision
    candidates: tuple[Candidate, ...]
    control: bool
    headroom: tuple[Headroom, ...]
    seed: int


def consider(
    catalogue: Catalogue,
    request: DecisionRequest,
    summary: HistorySummary,
    scorer: Scorer,
    *,
    exhausted_budgets: frozenset[str] = frozenset(),
) -> Considered:
    """`decide`, keeping what the arbitration saw (see `Considered`): the same stages, the same result."""
    return _decide(catalogue, request, summary, scorer, exhausted_budgets, None, None, _no_laps)


def _decide(
    catalogue: Catalogue,
    request: DecisionRequest,
    summary: HistorySummary,
    scorer: Scorer,
    exhausted_budgets: frozenset[str],
    prefiltered: int | None,
    view: HistoryView | None,
    laps: Callable[[str], None],
) -> Considered:
    run = _Run(catalogue, request, summary, view)
    alive = run.filter_rules(run.filter_static()) if prefiltered is None else prefiltered
    laps("rules")
    offers = run.filter_policies(alive, exhausted_budgets)
    laps("policies")
    candidates = run.score(offers, scorer)
    laps("scoring")
    control = in_control_group(request.customer.customer_id, catalogue.settings, request.context.now)
    seed = _seed(request.decision_id)
    result = arbitrate(
        candidates,
        request.max_offers,
        catalogue.settings,
        control=control,
        headroom=run.policy.headroom,
        seed=seed,
        explain=request.explain,
    )
    decision = run.finish(candidates, result, control, scorer.version)
    laps("arbitration")
    return Considered(decision, tuple(candidates), control, tuple(run.policy.headroom), seed)


def _seed(decision_id: str) -> int:
    # Seeded by the decision id: a logged decision can be replayed exactly.
    return int.from_bytes(hashlib.blake2b(decision_id.encode(), digest_size=8).digest())


class _Run:
    """The state of one decision as it moves through the stages."""

    def __init__(
        self, catalogue: Catalogue, request: DecisionRequest, summary: HistorySummary, view: HistoryView | None
    ) -> None:
        self.catalogue = catalogue
        self.request = request
        self.ctx = request.context
        self.view = view if view is not None else HistoryView(
            summary, self.ctx.now, catalogue.response_window_seconds, catalogue.confirmation_seconds
        )
        self.env = RuleEnv(request.customer.values, self.ctx, self.view)
        self.dropped: list[CandidateExplanation] = []
        self.notes: list[str] = _data_notes(request.customer)
        self.policy = PolicyOutcome({}, ())
        self.plan = plan_for(catalogue)
        self._rule_results: dict[str, bool | RuleError] = {}

    def filter_static(self) -> int:
        """Bits of the offers active now and with a treatment for the channel."""
        plan, explain = self.plan, self.request.explain
        active = plan.active_bits(self.ctx.now)
        in_channel = plan.channel_bits.get(self.ctx.channel, 0)
        if explain:
            for i in indices(plan.all_bits & ~active):
                self._drop(plan.offers[i], Stage.INACTIVE, "outside its active dates")
            for i in indices(active & ~in_channel):
                self._drop(plan.offers[i], Stage.CHANNEL, f"no treatment for channel '{self.ctx.channel}'")
        return active & in_channel

    def filter_rules(self, alive: int) -> int:
        """Apply the rules in evaluation order; each distinct rule is evaluated once, and only when an
        offer still alive needs it."""
        if not self.request.explain:
            return self._filter_rules_merged(alive)
        return self._filter_rules_ordered(alive)

    def _filter_rules_ordered(self, alive: int) -> int:
        """The rules in evaluation order, each failure noted as it happens (the explained decision, and
        any decision with a rule that fails)."""
        for guard in self.plan.rules:
            hit = alive & guard.members
            if hit and not self._holds(guard.rule):
                alive ^= hit
                if self.request.explain:
                    # One explanation per rule, shared by every offer it drops (a group's rule drops many).
                    stage, reason, failure = self._rule_drop(guard.rule)
                    for i in indices(hit):
                        self._drop(self.plan.offers[i], stage, reason, rule=failure)
        return alive

    def _filter_rules_merged(self, alive: int) -> int:
        """`filter_rules` without explanations: each distinct rule text once, over every offer it guards
        (see `Plan.merged_rules`), in one loop with no method call per rule. A rule that fails sends the
        decision to the ordered loop, so that its notes are the ones the explained decision gives."""
        start = alive
        env = self.env
        features, context, history = env.features, env.context, env.history
        for members, online in self.plan.merged_rules:
            if alive & members:
                try:
                    holds = online(features, context, history)
                except Exception:
                    return self._filter_rules_ordered(start)
                if not holds:
                    alive &= ~members
        return alive

    def _holds(self, rule: Rule) -> bool:
        # Shared expressions (the same text on several offers) are evaluated once per decision.
        key = rule.compiled.text
        result = self._rule_results.get(key)
        if result is None:
            try:
                result = bool(rule.compiled.evaluate(self.env))
            except RuleError as err:
                result = err
                self.notes.append(f"rule '{rule.name}' of {rule.owner} failed: {err.message}")
            self._rule_results[key] = result
        return result is True

    def _rule_drop(self, rule: Rule) -> tuple[Stage, str, RuleFailure]:
        """Why a false rule drops its offers: its text, the values it read and which of them were defaults."""
        result = self._rule_results.get(rule.compiled.text)
        error = result.message if isinstance(result, RuleError) else None
        values = _safe_explain(rule, self.env)
        defaulted = tuple(n for n in values if n in self.request.customer.defaulted)
        failure = RuleFailure(rule.name, rule.owner, rule.text, values, defaulted, error)
        reason = f"{rule.rule_class.value} rule '{rule.name}' of {rule.owner} is false: {rule.text}"
        if defaulted:
            reason += f" (decided on default values for missing data: {', '.join(defaulted)})"
        return Stage(rule.rule_class.value), reason, failure

    def filter_policies(self, alive: int, exhausted: frozenset[str]) -> list[Offer]:
        offers = [self.plan.offers[i] for i in indices(alive)]
        self.policy = evaluate_plan(
            self.plan.policies,
            alive,
            self.env,
            self.view,
            self.catalogue.settings.timezone,
            self.catalogue.service_offer_ids,
        )
        self.notes.extend(self.policy.errors)
        alive = []
        for offer in offers:
            hit = self.policy.suppressed.get(offer.id)
            if hit is not None:
                self._drop(offer, Stage.CONTACT_POLICY, hit.reason(), policy=hit)
            elif offer.id in exhausted:
                self._drop(
                    offer,
                    Stage.BUDGET,
                    f"volume budget of {offer.budget.limit} per {offer.budget.period.value} is used up"
                    if offer.budget
                    else "budget used up",
                )
            else:
                alive.append(offer)
        return alive

    def score(self, offers: list[Offer], scorer: Scorer) -> list[Candidate]:
        if not offers:
            return []
        propensities = scorer.score(self.request.customer, self.ctx, offers)
        concentrations = _concentrations(scorer, offers)
        settings = self.catalogue.settings
        weights = settings.context_weights.get(self.ctx.intent or "", {})
        default_weight = weights.get("*", 1.0)
        recent = self._recent_unanswered()
        pin = _pin(settings)
        constants, index = self.plan.constant_values, self.plan.index
        weight_of, boost = weights.get, settings.consistency_boost
        out = []
        for offer, p, n in zip(offers, _floats(propensities), concentrations, strict=True):
            offer_id = offer.id
            value = constants[index[offer_id]]
            if value is None:
                value = self._value(offer)
            seen = offer_id in recent
            weight = float(weight_of(offer.group, default_weight))
            factor = boost if seen and not pin else 1.0
            out.append(Candidate(offer, p, value, offer.lever, weight, factor, seen and pin, n))
        return out

    def _recent_unanswered(self) -> dict[str, float]:
        settings = self.catalogue.settings
        if settings.consistency is _CONSISTENCY_OFF:
            return {}
        return self.view.unanswered_contacts(self.ctx.now - settings.consistency_days * DAY)

    def _value(self, offer: Offer) -> float:
        """The value of an offer whose value is an expression (constant values are read from the plan)."""
        try:
            value = float(offer.value.evaluate(self.env))
        except RuleError as err:
            self.notes.append(f"value of offer '{offer.id}' failed: {err.message}; used 0")
            return 0.0
        if value != value:  # NaN: the expression read missing data
            self.notes.append(f"value of offer '{offer.id}' is undefined (missing data); used 0")
            return 0.0
        return value

    def finish(
        self, candidates: list[Candidate], result: ArbitrationResult, control: bool, model: str
    ) -> Decision:
        presented = tuple(
            _presented(s.candidate, s.rank, s.selection_probability, self.ctx.channel)
            for s in result.selected
        )
        return Decision(
            decision_id=self.request.decision_id,
            customer_id=self.request.customer.customer_id,
            context=self.ctx,
            offers=presented,
            control_group=control,
            mode=result.mode,
            catalogue_version=self.catalogue.version,
            model_version=model,
            direction=_OUTBOUND if self.catalogue.is_outbound(self.ctx.channel) else _INBOUND,
            suppressions=tuple(self.policy.suppressed.values()),
            explanations=self._explanations(candidates, result) if self.request.explain else (),
            scored=tuple((c.offer.id, c.propensity, c.priority) for c in candidates),
            notes=tuple(self.notes),
            features=feature_vector(self.catalogue.features, self.request.customer.values),
            feature_schema=self.catalogue.feature_schema,
        )

    def _explanations(
        self, candidates: list[Candidate], result: ArbitrationResult
    ) -> tuple[CandidateExplanation, ...]:
        chosen = {s.candidate.offer.id: s for s in result.selected}
        kept = [
            CandidateExplanation(
                c.offer.id,
                Stage.SELECTED if c.offer.id in chosen else Stage.ARBITRATION,
                _selected_reason(chosen[c.offer.id])
                if c.offer.id in chosen
                else result.passed_over[c.offer.id],
                scores=_scores(c),
            )
            for c in candidates
        ]
        return (*kept, *self.dropped)

    def _drop(self, offer: Offer, stage: Stage, reason: str, **details: object) -> None:
        self.dropped.append(CandidateExplanation(offer.id, stage, reason, **details))  # type: ignore[arg-type]


def _concentrations(scorer: Scorer, offers: list[Offer]) -> list[float | None]:
    """How sure the scorer is of each score, when it can say (see `Scorer.concentrations`)."""
    concentrations = getattr(scorer, "concentrations", None)
    return list(concentrations(offers)) if concentrations is not None else [None] * len(offers)


def _floats(values: Sequence[float] | np.ndarray) -> list[float]:
    """Python floats, one per score (an array's `tolist` converts them all in one call)."""
    return values.tolist() if isinstance(values, np.ndarray) else [float(v) for v in values]


def _pin(settings: ArbitrationSettings) -> bool:
    return settings.consistency is _CONSISTENCY_PIN


def _presented(c: Candidate, rank: int, probability: float, channel: str) -> PresentedOffer:
    return PresentedOffer(
        c.offer,
        c.offer.treatments[channel],
        rank,
        c.propensity,
        c.value,
        c.lever,
        c.context_weight,
        c.boost,
        c.priority,
        probability,
    )


def _scores(c: Candidate) -> dict[str, float]:
    return {
        "propensity": c.propensity,
        "value": c.value,
        "lever": c.lever,
        "context_weight": c.context_weight,
        "boost": c.boost,
        "priority": c.priority,
    }


def _selected_reason(s: Selection) -> str:
    c, rank, probability = s.candidate, s.rank, s.selection_probability
    parts = f"propensity {c.propensity:.3f} x value {c.value:g} x lever {c.lever:g} x context {c.context_weight:g}"
    boost = f" x consistency {c.boost:g}" if c.boost != 1.0 else ""
    pinned = " (pinned: shown recently in another contact, not yet answered)" if c.pinned else ""
    return f"rank {rank}: priority {c.priority:.4g} = {parts}{boost}{pinned}; chosen with probability {probability:.3g}"


def _safe_explain(rule: Rule, env: RuleEnv) -> dict:
    try:
        return dict(rule.compiled.explain(env))
    except RuleError:
        return {}


def _data_notes(customer: CustomerFeatures) -> list[str]:
    notes = []
    if not customer.known:
        notes.append("unknown customer: decided on default features")  # every batch feature: no list
    elif customer.defaulted:
        notes.append(f"missing or invalid features replaced by defaults: {', '.join(customer.defaulted)}")
    if customer.stale:
        notes.append(f"stale features: {', '.join(customer.stale)}")
    return notes
