"""Replay: the logged decisions made again with a candidate, and what would change.

`replay` reads the decisions of [since, until) and their customers' histories, re-decides each one with
the candidate (and, when given, with the current policy: the fidelity check and the "before" of the rules
and policies), and returns a `ReplayReport`:
- offers presented, per offer: logged, re-decided by the current policy, re-decided by the candidate;
- rules and contact policies that dropped offers, per stage and name: current vs candidate;
- the value per presented offer (acceptance, and value with the offer's value): the logged policy's
  observed mean and the candidate's IPS / SNIPS / DR estimates (evaluation/ope_rows.py).

`replay_decisions` is the same without the database (the logged decisions and histories given), for
callers that already hold them (the simulator, tests, the console).

>>> report = await replay(engine, candidate, since=None, until=now, current=current)   # doctest: +SKIP
>>> report.presentations[0].after                                                     # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from decisioning.engine import Decision
from decisioning.explanation import Stage
from evaluation.history_reads import KnownEvent, LoggedDecision, read_histories, read_logged_decisions
from evaluation.ope_rows import OpeRowBuilder, ValueEstimates, value_estimates
from evaluation.redecide import CustomerHistories, Policy, Redecided, logged_path, redecide

Progress = Callable[[int], None]  # called with the number of decisions just replayed


@dataclass(frozen=True)
class ReplayOptions:
    clip: float | None = None
    bootstrap: int = 1000
    seed: int = 0
    folds: int = 5


@dataclass(frozen=True)
class OfferShift:
    """How often one offer is presented: logged, re-decided by the current policy, by the candidate."""

    offer_id: str
    logged: int
    current: int | None
    candidate: int

    @property
    def change(self) -> int:
        return self.candidate - self.logged


@dataclass(frozen=True)
class StageShift:
    """How many offers one rule, contact policy or stage dropped: current policy vs candidate."""

    stage: str
    name: str  # the rule's "name (owner)", the policy's id, or "" for a stage without names
    current: int | None
    candidate: int


@dataclass(frozen=True)
class ReplayReport:
    """What the candidate would change on the logged decisions (see the module doc)."""

    decisions: int
    replayed: int
    skipped: Mapping[str, int]
    changed: int  # decisions whose offers (or their order) the candidate changes
    reproduced: int | None  # decisions the current policy makes again exactly as logged (None: not asked)
    presentations: tuple[OfferShift, ...]
    stages: tuple[StageShift, ...]
    rows: int
    rows_left_out: Mapping[str, int]
    acceptance: ValueEstimates | None
    value: ValueEstimates | None
    not_estimated: str | None = None  # why there are no estimates

    def to_json(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "replayed": self.replayed,
            "skipped": dict(self.skipped),
            "changed": self.changed,
            "reproduced": self.reproduced,
            "presentations": [
                {"offer_id": s.offer_id, "logged": s.logged, "current": s.current, "candidate": s.candidate}
                for s in self.presentations
            ],
            "stages": [vars(s) for s in self.stages],
            "rows": self.rows,
            "rows_left_out": dict(self.rows_left_out),
            "acceptance": None if self.acceptance is None else self.acceptance.to_json(),
            "value": None if self.value is None else self.value.to_json(),
            "not_estimated": self.not_estimated,
        }


async def read_logs(
    engine: AsyncEngine, policy: Policy, since: float | None, until: float
) -> tuple[list[LoggedDecision], Mapping[str, list[KnownEvent]]]:
    """The logged decisions of [since, until) and their customers' histories."""
    logged = await read_logged_decisions(engine, since, until)
    groups = {o.id: o.group for o in policy.catalogue.offers}
    histories = await read_histories(engine, {d.customer_id for d in logged}, since, until, groups)
    return logged, histories


async def replay(
    engine: AsyncEngine,
    candidate: Policy,
    *,
    since: float | None,
    until: float,
    current: Policy | None = None,
    options: ReplayOptions = ReplayOptions(),
    progress: Progress | None = None,
    on_read: Callable[[int], None] | None = None,
) -> ReplayReport:
    """Read the logs and replay them (see the module doc). `on_read` is told how many decisions there are."""
    logged, histories = await read_logs(engine, candidate, since, until)
    if on_read is not None:
        on_read(len(logged))
    return replay_decisions(logged, histories, candidate, until, current=current, options=options, progress=progress)


def replay_decisions(
    logged: Sequence[LoggedDecision],
    histories: Mapping[str, list[KnownEvent]],
    candidate: Policy,
    until: float,
    *,
    current: Policy | None = None,
    options: ReplayOptions = ReplayOptions(),
    progress: Progress | None = None,
) -> ReplayReport:
    """Replay decisions already read (see the module doc)."""
    tally = _Tally(current is not None)
    rows = OpeRowBuilder(candidate.catalogue, until)
    summaries = CustomerHistories(histories)
    for done, decision in enumerate(logged, start=1):
        summary = summaries.summary_at(decision)
        made = redecide(candidate, decision, summary)
        if isinstance(made, Redecided):
            before = redecide(current, decision, summary) if current is not None else None
            tally.add(decision, made, before if isinstance(before, Redecided) else None)
            rows.add(decision, made)
        else:
            tally.skipped[made] += 1
        if progress is not None and (done % 200 == 0 or done == len(logged)):
            progress(200 if done % 200 == 0 else done % 200)
    return tally.report(len(logged), rows, candidate, options)


@dataclass
class _Tally:
    """Counts over the replayed decisions."""

    with_current: bool
    replayed: int = 0
    changed: int = 0
    reproduced: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    logged: Counter[str] = field(default_factory=Counter)
    current: Counter[str] = field(default_factory=Counter)
    candidate: Counter[str] = field(default_factory=Counter)
    current_stages: Counter[tuple[str, str]] = field(default_factory=Counter)
    candidate_stages: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, logged: LoggedDecision, made: Redecided, before: Redecided | None) -> None:
        self.replayed += 1
        path = list(logged_path(logged))
        self.logged.update(path)
        self.candidate.update(_offers(made.decision))
        self.candidate_stages.update(_drops(made.decision))
        self.changed += _offers(made.decision) != path
        if before is not None:
            self.current.update(_offers(before.decision))
            self.current_stages.update(_drops(before.decision))
            self.reproduced += _offers(before.decision) == path

    def report(self, decisions: int, rows: OpeRowBuilder, candidate: Policy, options: ReplayOptions) -> ReplayReport:
        acceptance = value = None
        why = None
        try:
            acceptance, value = value_estimates(
                rows.rows,
                candidate.catalogue,
                clip=options.clip,
                bootstrap=options.bootstrap,
                seed=options.seed,
                folds=options.folds,
            )
        except ValueError as error:
            why = str(error)
        return ReplayReport(
            decisions=decisions,
            replayed=self.replayed,
            skipped=dict(self.skipped),
            changed=self.changed,
            reproduced=self.reproduced if self.with_current else None,
            presentations=self._presentations(),
            stages=self._stages(),
            rows=len(rows.rows),
            rows_left_out=dict(rows.rows.left_out),
            acceptance=acceptance,
            value=value,
            not_estimated=why,
        )

    def _presentations(self) -> tuple[OfferShift, ...]:
        offers = sorted(set(self.logged) | set(self.candidate) | set(self.current))
        current = self.current if self.with_current else None
        shifts = (
            OfferShift(o, self.logged[o], None if current is None else current[o], self.candidate[o]) for o in offers
        )
        return tuple(sorted(shifts, key=lambda s: (-abs(s.change), s.offer_id)))

    def _stages(self) -> tuple[StageShift, ...]:
        keys = sorted(set(self.current_stages) | set(self.candidate_stages))
        current = self.current_stages if self.with_current else None
        return tuple(
            StageShift(
                stage, name, None if current is None else current[(stage, name)], self.candidate_stages[(stage, name)]
            )
            for stage, name in keys
        )


def _offers(decision: Decision) -> list[str]:
    return [p.offer.id for p in decision.offers]


_NOT_DROPS = frozenset({Stage.SELECTED, Stage.ARBITRATION})


def _drops(decision: Decision) -> list[tuple[str, str]]:
    """(stage, name) of every offer the decision dropped before arbitration."""
    out = []
    for explanation in decision.explanations:
        if explanation.stage in _NOT_DROPS:
            continue
        if explanation.rule is not None:
            name = f"{explanation.rule.name} ({explanation.rule.owner})"
        elif explanation.policy is not None:
            name = explanation.policy.policy_id
        else:
            name = ""
        out.append((explanation.stage.value, name))
    return out
