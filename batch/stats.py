"""What a run did, counted per partition and merged: the summary an operator reads at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from decisioning.engine import Decision


@dataclass
class RunStats:
    """Counts over customers: merged across partitions with `merge`, stored as JSON in the manifest.

    `eligible_pairs`: (customer, offer) pairs that passed the rules; `candidate_pairs`: those that also
    passed the contact policies (what was scored); suppressions count pairs, by the first rule or policy
    that dropped them.
    """

    customers: int = 0
    with_offers: int = 0
    control_group: int = 0
    eligible_pairs: int = 0
    candidate_pairs: int = 0
    rule_suppressions: Counter[str] = field(default_factory=Counter)
    policy_suppressions: Counter[str] = field(default_factory=Counter)
    chosen: Counter[str] = field(default_factory=Counter)  # offer id -> customers it was chosen for
    no_offer_reasons: Counter[str] = field(default_factory=Counter)
    rejected_features: Counter[str] = field(default_factory=Counter)  # invalid values in the input, per feature

    def count(self, decision: Decision, reason: str | None) -> None:
        """Count one customer's decision."""
        self.customers += 1
        self.with_offers += bool(decision.offers)
        self.control_group += decision.control_group
        self.candidate_pairs += len(decision.scored)
        self.policy_suppressions.update(s.policy_id for s in decision.suppressions)
        self.chosen.update(p.offer.id for p in decision.offers)
        if reason is not None:
            self.no_offer_reasons[reason] += 1

    def merge(self, other: RunStats) -> None:
        for name in ("customers", "with_offers", "control_group", "eligible_pairs", "candidate_pairs"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in _SCALARS}
        out.update({k: dict(getattr(self, k).most_common()) for k in _COUNTERS})
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunStats:
        stats = cls(**{k: int(data.get(k, 0)) for k in _SCALARS})
        for k in _COUNTERS:
            getattr(stats, k).update(data.get(k, {}))
        return stats

    def text(self) -> str:
        """The summary in a few readable lines."""
        lines = [
            f"customers: {self.customers:,}; with an offer: {self.with_offers:,}; "
            f"control group: {self.control_group:,}",
            f"eligible (customer, offer) pairs after rules: {self.eligible_pairs:,}; after contact policies: "
            f"{self.candidate_pairs:,}",
        ]
        for title, name in _SECTIONS:
            counts = getattr(self, name)
            if counts:
                lines.append(f"{title}:")
                lines.extend(f"  {count:>12,}  {key}" for key, count in counts.most_common())
        return "\n".join(lines)


_SCALARS = ("customers", "with_offers", "control_group", "eligible_pairs", "candidate_pairs")
_COUNTERS = ("rule_suppressions", "policy_suppressions", "chosen", "no_offer_reasons", "rejected_features")
_SECTIONS = (
    ("suppressed by rule (pairs)", "rule_suppressions"),
    ("suppressed by contact policy (pairs)", "policy_suppressions"),
    ("chosen per offer (customers)", "chosen"),
    ("no offer, by reason (customers)", "no_offer_reasons"),
    ("invalid input values, defaulted (rows)", "rejected_features"),
)
