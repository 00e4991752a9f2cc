"""Champion vs challenger, treated vs control: acceptance and value per contact with 95% intervals.

Pure statistics over the counts `history.outcomes.group_outcomes` returns. Acceptance per contact gets a
Wilson score interval (sound for small counts and rates near 0); value per contact (the value of accepted
contacts, 0 for the others) gets a normal interval from its sample mean and variance, which the SQL sums
give without reading every row back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

Z95 = 1.959963984540054


class Cell(Protocol):
    model_version: str
    control_group: bool
    decisions: int
    contacts: int
    accepted: int
    value_sum: float
    value_sq_sum: float


@dataclass(frozen=True, slots=True)
class Arm:
    """One side of a comparison (a model version, or the treated or the control group)."""

    name: str
    decisions: int
    contacts: int
    accepted: int
    acceptance: float | None
    acceptance_95: tuple[float, float] | None
    value_per_contact: float | None
    value_95: tuple[float, float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a rate; None without any trial.

    >>> [round(x, 4) for x in wilson(5, 100)]
    [0.0215, 0.1118]
    """
    if n <= 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def normal_interval(total: float, sq_total: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """A normal interval for a mean from the sum and the sum of squares of `n` values.

    >>> normal_interval(10.0, 100.0, 1)    # one value: no spread to estimate
    (10.0, 10.0)
    """
    if n <= 0:
        return None
    mean = total / n
    variance = max(sq_total / n - mean * mean, 0.0) * (n / (n - 1) if n > 1 else 0.0)
    half = z * math.sqrt(variance / n)
    return mean - half, mean + half


def arm(name: str, cells: Iterable[Cell]) -> Arm:
    """The pooled outcomes of some cells, with their intervals."""
    cells = list(cells)
    decisions = sum(c.decisions for c in cells)
    n = sum(c.contacts for c in cells)
    accepted = sum(c.accepted for c in cells)
    total, sq = sum(c.value_sum for c in cells), sum(c.value_sq_sum for c in cells)
    return Arm(
        name,
        decisions,
        n,
        accepted,
        accepted / n if n else None,
        wilson(accepted, n),
        total / n if n else None,
        normal_interval(total, sq, n),
    )


def compare(cells: Sequence[Cell], champion: str | None, challenger: str | None) -> dict[str, Any]:
    """The report: champion vs challenger (treated decisions only) and treated vs control (all models).

    A decision scored by one side of a champion/challenger split logs that side's version, so each
    model's arm is exactly the decisions it scored.
    """
    treated = [c for c in cells if not c.control_group]
    models = {"champion": champion, "challenger": challenger}
    return {
        "models": {
            role: arm(version, [c for c in treated if c.model_version == version]).to_dict()
            for role, version in models.items()
            if version
        },
        "groups": {
            "treated": arm("treated", treated).to_dict(),
            "control": arm("control", [c for c in cells if c.control_group]).to_dict(),
        },
        "by_version": [arm(v, [c for c in treated if c.model_version == v]).to_dict() for v in _versions(treated)],
    }


def _versions(cells: Iterable[Cell]) -> list[str]:
    return sorted({c.model_version for c in cells})
