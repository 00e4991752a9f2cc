"""What one policy's run measured: contacts, acceptances, value, suppressions, per day and per model.

A contact is one presented (inbound) or sent (outbound) offer. Value is credited to the day of the contact
(the response may come later), so every day's figure is complete when the run ends.

>>> s = PolicyStats("nbo", customers=2, days=1)
>>> s.count_contact(0, "m1", accepted=True, value=90.0)
>>> s.summary()["value_per_contact"]
90.0
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PolicyStats:
    policy: str
    customers: int
    days: int
    decisions: int = 0
    empty_decisions: int = 0
    contacts: int = 0
    accepted: int = 0
    declined: int = 0
    value: float = 0.0
    suppressions: Counter[str] = field(default_factory=Counter)  # policy id -> offers it suppressed
    channels: Counter[str] = field(default_factory=Counter)
    day_contacts: list[int] = field(default_factory=list)
    day_value: list[float] = field(default_factory=list)
    models: dict[str, list[float]] = field(default_factory=dict)  # model version -> [contacts, accepted, value]
    trainings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    peak_memory_mb: float = 0.0

    def __post_init__(self) -> None:
        self.day_contacts = self.day_contacts or [0] * self.days
        self.day_value = self.day_value or [0.0] * self.days

    def count_contact(self, day: int, model: str, *, accepted: bool, value: float) -> None:
        self.contacts += 1
        self.day_contacts[day] += 1
        gained = value if accepted else 0.0
        self.accepted += accepted
        self.value += gained
        self.day_value[day] += gained
        per_model = self.models.setdefault(model, [0, 0, 0.0])
        per_model[0] += 1
        per_model[1] += accepted
        per_model[2] += gained

    def summary(self) -> dict[str, Any]:
        """The figures `nbo simulate --json` writes for this policy."""
        contacts = max(self.contacts, 1)
        return {
            "value_per_contact": self.value / contacts,
            "acceptance_rate": self.accepted / contacts,
            "acceptances": self.accepted,
            "value": self.value,
            "contacts": self.contacts,
            "contacts_per_customer": self.contacts / max(self.customers, 1),
            "decisions": self.decisions,
            "decisions_without_offer": self.empty_decisions,
            "declines": self.declined,
            "channels": dict(self.channels),
            "suppressions": dict(sorted(self.suppressions.items())),
            "value_per_day": self.day_value,
            "contacts_per_day": self.day_contacts,
            "value_per_contact_by_model": {
                m: {"contacts": int(c), "acceptances": int(a), "value_per_contact": v / max(c, 1)}
                for m, (c, a, v) in self.models.items()
            },
            "trainings": self.trainings,
            "seconds": self.seconds,
            "peak_memory_mb": self.peak_memory_mb,
        }
