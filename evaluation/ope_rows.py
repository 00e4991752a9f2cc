"""From logged decisions made again to the estimators' rows, and the estimates of a candidate's value.

One row per presented offer of a logged decision, at its logged rank k, for the decisions whose response
windows have all closed by `until` (an open window would keep the early acceptances and drop the pending
refusals: an inflated value). Reward: accepted (1) or not (0), and accepted x the offer's logged value.

Ranks are weighted by their prefix, which is what a decision of several offers needs: the row at rank k
has logging_probability = the product of the logged selection probabilities of ranks 1..k (the
probability that the logging policy made the same list down to k), and target_probability = the same
product under the candidate (`choice_probabilities`). With one offer per decision, both are the plain
probabilities of the logged offer. The estimate is unbiased for a rank's reward that depends on the offers
shown at that rank and above (not on those below).

DR's reward model q(x, offer) is LightGBM on the decision's stored features with the offer, group,
channel and intent columns (the learning loop's encoder), cross-fitted by decision. At rank k,
q_target = W(k-1) x sum over offers a of P_candidate(a at k | logged ranks above) x q(x, a), W(k-1) being
the candidate's probability of the logged ranks above k (1 at rank 1): the cascade form of DR.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisioning.catalogue import Catalogue
from evaluation.estimators import Estimates, Interval, estimate
from evaluation.history_reads import LoggedDecision, LoggedOffer
from evaluation.redecide import Redecided
from evaluation.reward_model import cross_fit
from models.dataset import DEFAULT_WINDOW_SECONDS
from models.learning import encoder_for_catalogue
from models.settling import settle

WINDOW_OPEN = "window_open"
NOT_DISPLAYED = "not_displayed"
NO_PROBABILITY = "no_selection_probability"
NO_OFFER = "presented_nothing"


@dataclass(frozen=True)
class ValueEstimates:
    """A value measure (acceptance or value per presented offer): the logging policy's observed mean and
    the candidate's off-policy estimates."""

    current: Interval
    candidate: Estimates

    def to_json(self) -> dict[str, Any]:
        return {"current": self.current.to_json(), "candidate": self.candidate.to_json()}


@dataclass
class OpeRows:
    """The estimators' rows, column by column, and why some logged contacts are not rows."""

    decision_id: list[str] = field(default_factory=list)
    accepted: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    offer_value: list[float] = field(default_factory=list)  # the logged offer's value, accepted or not
    logging_probability: list[float] = field(default_factory=list)
    target_probability: list[float] = field(default_factory=list)
    prefix_target: list[float] = field(default_factory=list)  # W(k-1): the candidate's ranks above
    logged: list[tuple[list[Any], tuple[str, str, str, str | None], float]] = field(default_factory=list)
    alternatives: list[list[tuple[str, str, float, float]]] = field(default_factory=list)  # offer, group, p, value
    left_out: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.accepted)


class OpeRowBuilder:
    """Collects rows decision by decision (see the module doc)."""

    def __init__(self, catalogue: Catalogue, until: float) -> None:
        self.catalogue, self.until, self.rows = catalogue, until, OpeRows()
        self._groups = {o.id: o.group for o in catalogue.offers}

    def add(self, logged: LoggedDecision, redecided: Redecided) -> None:
        offers = sorted(logged.offers, key=lambda o: o.rank)
        why = self._left_out(logged, offers)
        if why is not None:
            self.rows.left_out[why] += max(len(offers), 1)
            return
        logging = target = 1.0
        for offer, distribution in zip(offers, redecided.distributions, strict=True):
            above, logging = target, logging * float(offer.selection_probability or 0.0)
            target *= distribution.get(offer.offer_id, 0.0)
            if offer.not_displayed_at is not None:
                self.rows.left_out[NOT_DISPLAYED] += 1  # never seen: no reward, but it still shaped the list
                continue
            self._append(logged, offer, distribution, redecided, (logging, target, above))

    def _left_out(self, logged: LoggedDecision, offers: list[LoggedOffer]) -> str | None:
        if not offers:
            return NO_OFFER
        if any(o.selection_probability is None or o.selection_probability <= 0 for o in offers):
            return NO_PROBABILITY
        if any(logged.at + self._window(o.offer_id) > self.until for o in offers):
            return WINDOW_OPEN
        return None

    def _window(self, offer_id: str) -> float:
        window = self.catalogue.response_window_seconds(offer_id)
        return DEFAULT_WINDOW_SECONDS if window is None else window

    def _append(
        self,
        logged: LoggedDecision,
        offer: LoggedOffer,
        distribution: Any,
        redecided: Redecided,
        probabilities: tuple[float, float, float],
    ) -> None:
        rows = self.rows
        window = self._window(offer.offer_id)
        label = settle(logged.at, window, accepted_at=offer.accepted_at, refused_at=offer.refused_at, as_of=self.until)
        accepted = float(label or 0)
        rows.decision_id.append(logged.decision_id)
        rows.accepted.append(accepted)
        rows.offer_value.append(float(offer.value or 0.0))
        rows.value.append(accepted * rows.offer_value[-1])
        rows.logging_probability.append(probabilities[0])
        rows.target_probability.append(probabilities[1])
        rows.prefix_target.append(probabilities[2])
        described = (offer.offer_id, offer.group, logged.channel, logged.intent)
        rows.logged.append((logged.features or [], described, logged.at))
        rows.alternatives.append(
            [(a, self._groups.get(a, ""), p, redecided.values.get(a, 0.0)) for a, p in distribution.items() if p > 0]
        )


def value_estimates(
    rows: OpeRows, catalogue: Catalogue, *, clip: float | None, bootstrap: int, seed: int, folds: int = 5
) -> tuple[ValueEstimates, ValueEstimates]:
    """(acceptance per presented offer, value per presented offer): current and candidate."""
    if len(rows) == 0:
        raise ValueError(f"no settled logged contacts to evaluate on (left out: {dict(rows.left_out)})")
    groups = np.asarray(rows.decision_id)
    logging, target = np.asarray(rows.logging_probability), np.asarray(rows.target_probability)
    accepted, value = np.asarray(rows.accepted), np.asarray(rows.value)
    q = _reward_model(rows, catalogue, accepted, groups, folds, seed)
    out = []
    for reward, kind in ((accepted, "acceptance"), (value, "value")):
        common = {"clip": clip, "groups": groups, "bootstrap": bootstrap, "seed": seed}
        current = estimate(reward, logging, logging, groups=groups, bootstrap=bootstrap, seed=seed).ips
        candidate = estimate(reward, logging, target, **(q[kind] if q else {}), **common)
        out.append(ValueEstimates(current, candidate))
    return out[0], out[1]


def _reward_model(
    rows: OpeRows, catalogue: Catalogue, accepted: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> dict[str, dict[str, np.ndarray]] | None:
    """q_logged and q_target for acceptance and for value; None when DR cannot be fitted (one decision)."""
    if len(set(rows.decision_id)) < 2:
        return None
    encoder = encoder_for_catalogue(catalogue)
    x = encoder.encode_snapshots(*zip(*rows.logged, strict=True))
    fitted = cross_fit(x, accepted, groups=groups, folds=folds, categorical=encoder.categorical_indices, seed=seed)
    q_logged = fitted.predict(x, fitted.fold)
    owner = np.asarray([i for i, alts in enumerate(rows.alternatives) for _ in alts], dtype=np.intp)
    pairs = [(rows.logged[i][0], (a, g, rows.logged[i][1][2], rows.logged[i][1][3]), rows.logged[i][2])
             for i, alts in enumerate(rows.alternatives) for a, g, _, _ in alts]  # fmt: skip
    q_alt = fitted.predict(encoder.encode_snapshots(*zip(*pairs, strict=True)), fitted.fold[owner]) if pairs else []
    p_alt = np.asarray([p for alts in rows.alternatives for _, _, p, _ in alts])
    v_alt = np.asarray([v for alts in rows.alternatives for _, _, _, v in alts])
    above = np.asarray(rows.prefix_target)
    expected = np.bincount(owner, weights=p_alt * q_alt, minlength=len(rows)) if pairs else np.zeros(len(rows))
    expected_value = np.bincount(owner, weights=p_alt * q_alt * v_alt, minlength=len(rows)) if pairs else expected
    logged_value = np.asarray(rows.offer_value)
    return {
        "acceptance": {"q_logged": q_logged, "q_target": above * expected},
        "value": {"q_logged": q_logged * logged_value, "q_target": above * expected_value},
    }
