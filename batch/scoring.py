"""Scoring a whole partition in one model call, then handing each decision its customer's scores.

Online, `decide` calls the scorer once per decision. In a partition that is a call per customer, each
paying the model's fixed cost; here every (customer, offer) pair that passed the rules is scored at once
(`score_many`, when the scorer has it) and each decision gets a `Prescored` scorer that looks its
offers up. The numbers are those `score` would give: the model and its calibration work row by row.
Pairs that the contact policies then drop were scored for nothing; that costs less than the calls saved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from decisioning.catalogue import Offer
from decisioning.ports import Scorer
from decisioning.types import Context, CustomerFeatures


class Prescored:
    """A scorer for one customer whose scores were computed in bulk; `version` is the real model's."""

    __slots__ = ("_scores", "version")

    def __init__(self, version: str, scores: Mapping[str, float]) -> None:
        self.version = version
        self._scores = scores

    def for_customer(self, customer_id: str) -> Prescored:
        return self

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        return np.array([self._scores[o.id] for o in offers], dtype=float)


def prescored(
    scorer: Scorer, customers: Sequence[CustomerFeatures], context: Context, offers: Sequence[Sequence[Offer]]
) -> list[Scorer]:
    """One scorer per customer: `Prescored` for the customers of a scorer with `score_many` (grouped by
    the model that scores them: champion or challenger), the customer's own scorer otherwise."""
    chosen = [scorer.for_customer(c.customer_id) for c in customers]
    out: list[Scorer] = list(chosen)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(chosen):
        if hasattr(s, "score_many"):
            groups.setdefault(id(s), []).append(i)
    for members in groups.values():
        model = chosen[members[0]]
        scores = model.score_many([customers[i] for i in members], context, [offers[i] for i in members])
        for i, values in zip(members, scores, strict=True):
            out[i] = Prescored(model.version, dict(zip((o.id for o in offers[i]), values.tolist(), strict=True)))
    return out


def score_matrix(
    scorer: Scorer, customers: Sequence[CustomerFeatures], context: Context, alive: np.ndarray, offers: Sequence[Offer]
) -> tuple[np.ndarray, list[Scorer]]:
    """The scores of every alive (customer, offer) cell as an (n, m) matrix (NaN elsewhere), and each
    customer's scorer (champion or challenger). A scorer with `score_many` scores all its customers in one
    model call; another scores each customer itself, as `decide` would have called it."""
    chosen = [scorer.for_customer(c.customer_id) for c in customers]
    matrix = np.full(alive.shape, np.nan)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(chosen):
        if hasattr(s, "score_many"):
            groups.setdefault(id(s), []).append(i)
        elif alive[i].any():
            cells = np.flatnonzero(alive[i])
            matrix[i, cells] = s.score(customers[i], context, [offers[j] for j in cells])
    for members in groups.values():
        rows = np.asarray(members, dtype=np.intp)
        cells = alive[rows]
        lists = [[offers[j] for j in np.flatnonzero(row)] for row in cells]
        scores = chosen[members[0]].score_many([customers[i] for i in members], context, lists)
        block = matrix[rows]
        block[cells] = np.concatenate(scores) if scores else np.empty(0)  # row-major: each row's offers in order
        matrix[rows] = block
    return matrix, chosen


def prescored_row(scorer: Scorer, row: np.ndarray, alive: np.ndarray, offers: Sequence[Offer]) -> Scorer:
    """A customer's scorer for `decide`: its bulk scores looked up (`Prescored`), or itself when it has none."""
    if not hasattr(scorer, "score_many"):
        return scorer
    cells = np.flatnonzero(alive)
    return Prescored(scorer.version, dict(zip((offers[j].id for j in cells), row[cells].tolist(), strict=True)))
