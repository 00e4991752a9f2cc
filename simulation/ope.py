"""Offline policy evaluation checked against the simulator (issue 16, item 3).

A logging policy that explores (by default `random`: the control group's uniform choice, which logs
1/candidates) runs the bank and writes its decision log; `evaluation.estimators.estimate` estimates each
target policy's value per presented offer from that log alone; then the simulator runs each target policy
itself, and the check is that the value it measures lies inside the estimate's 95% interval. The
simulator knows the truth, so what it measures is the target's *expected* value per presented offer (the
mean of its true probabilities, times the offers' values), free of the noise of the draws; what its
customers actually did (`realised`) is reported beside it. A 95% interval misses about one run in twenty.

Why the comparison is valid: an estimate from logged decisions is the value of the target policy *at the
states the logging policy visited*. The simulated customer's state moves with the policy (fatigue,
cool-offs, caps, what they hold), so over a long horizon the two policies meet different states and the
logged estimate answers another question. The check therefore compares one-step values: every
customer's first decision of the run (`first_contact`), where no policy has acted yet, so the state
(features, needs, empty history) and the moment (the shared visit schedule) are the same for every
policy; and it lifts the volume budgets, the one place where one customer's decision changes another's
candidates (a budget used up by the logging policy at 11:00 is not the one the target would have used up).
The reward is the offer's value when accepted (value per presented offer); the acceptance rate is
checked the same way.

DR uses a cross-fitted reward model: the mean reward per (offer, channel), fitted on one half of the
decisions (by a hash of the decision id) and applied to the other, both ways.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from evaluation.estimators import Estimates, estimate
from simulation.compare import SimulationSpec, compare
from simulation.logs import TARGETS
from simulation.wiring import POLICIES


@dataclass(frozen=True)
class OpeSpec:
    customers: int
    days: int
    seed: int
    logging: str = "random"
    targets: tuple[str, ...] = ("push", "oracle")
    log_path: Path | None = None
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        if self.logging not in POLICIES:
            raise ValueError(f"unknown logging policy {self.logging!r}; known: {', '.join(POLICIES)}")
        unknown = [t for t in self.targets if t not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"unknown target policies {unknown}; known: {', '.join(TARGETS)}")


@dataclass(frozen=True)
class OpeCheck:
    """One target, one reward: the estimates from the logs and the value the simulator measured."""

    target: str
    reward: str  # "value" or "accepted"
    measured: float  # the target's expected reward per presented offer, from the truth's probabilities
    realised: float  # what its customers actually did (the draws' mean: noisier)
    measured_rows: int
    estimates: Estimates

    @property
    def within(self) -> bool:
        intervals = [self.estimates.ips, self.estimates.snips]
        if self.estimates.dr is not None:
            intervals.append(self.estimates.dr)
        return all(i.low <= self.measured <= i.high for i in intervals)


def check_ope(spec: OpeSpec, workers: int = 2) -> list[OpeCheck]:
    """Run the logging policy and every target, then estimate and compare (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="nbo-ope-") as scratch:
        logs = {p: Path(scratch) / f"{p}.parquet" for p in dict.fromkeys((spec.logging, *spec.targets))}
        policies = tuple(logs)
        run = SimulationSpec(spec.customers, spec.days, spec.seed, policies, retrain_days=0, budgets=False,
                             logs=logs, log_targets=spec.targets)  # fmt: skip
        compare(run, workers)
        logged = _first_contacts(pq.read_table(logs[spec.logging]).to_pydict())
        if spec.log_path is not None:
            _write_log(spec.log_path, logged, spec.targets)
        checks = []
        for target in spec.targets:
            lived = _first_contacts(pq.read_table(logs[target]).to_pydict())
            checks += [_check(spec, logged, lived, target, reward) for reward in ("value", "accepted")]
        return checks


def _first_contacts(columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    keep = np.array(columns["first_contact"], dtype=bool)
    return {name: np.array(values, dtype=object)[keep] for name, values in columns.items()}


Columns = dict[str, np.ndarray]


def _check(spec: OpeSpec, logged: Columns, lived: Columns, target: str, reward: str) -> OpeCheck:
    r = logged["reward" if reward == "value" else "accepted"].astype(float)
    q_logged, q_target = _reward_model(logged, r, target)
    estimates = estimate(
        r, logged["logging_probability"].astype(float), logged[f"target_probability_{target}"].astype(float),
        q_logged=q_logged, q_target=q_target, groups=logged["decision_id"].astype(str),
        bootstrap=spec.bootstrap, seed=spec.seed,
    )  # fmt: skip
    realised = lived["reward" if reward == "value" else "accepted"].astype(float)
    expected = lived["expected_reward" if reward == "value" else "true_probability"].astype(float)
    return OpeCheck(target, reward, float(expected.mean()), float(realised.mean()), len(realised), estimates)


def _reward_model(logged: Columns, r: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Cross-fitted mean reward per (offer, channel): q for the logged offer and for the target's choice."""
    choices = logged.get(f"target_offer_{target}")
    if choices is None or any(c is None for c in choices):
        return None, None  # a random target has no single choice: DR is left out
    half = np.array([hashlib.blake2b(d.encode(), digest_size=2).digest()[0] & 1 for d in logged["decision_id"]])
    q_logged, q_target = np.empty(len(r)), np.empty(len(r))
    overall = float(r.mean()) if len(r) else 0.0
    for fold in (0, 1):
        fit, apply = half != fold, half == fold
        means = _means(logged["offer_id"][fit], logged["channel"][fit], r[fit])
        channels = logged["channel"][apply]
        q_logged[apply] = [means.get(k, overall) for k in zip(logged["offer_id"][apply], channels, strict=True)]
        q_target[apply] = [means.get(k, overall) for k in zip(choices[apply], channels, strict=True)]
    return q_logged, q_target


def _means(offers: np.ndarray, channels: np.ndarray, r: np.ndarray) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], list[float]] = {}
    for o, c, x in zip(offers, channels, r, strict=True):
        cell = sums.setdefault((o, c), [0.0, 0.0])
        cell[0] += x
        cell[1] += 1
    return {k: s / n for k, (s, n) in sums.items()}


def _write_log(path: Path, logged: dict[str, np.ndarray], targets: Sequence[str]) -> None:
    """The plain log file of issue 16 for the first target (CSV or Parquet), every column kept."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    columns = {k: v.tolist() for k, v in logged.items()}
    columns["target_probability"] = columns[f"target_probability_{targets[0]}"]
    table = pa.table(columns)
    pq.write_table(table, path) if path.suffix == ".parquet" else pa_csv.write_csv(table, path)


def print_check(console: Console, checks: Sequence[OpeCheck], seconds: float) -> None:
    t = Table(title="Offline estimates from the logging policy's logs vs the simulator running the target")
    for column in ("target", "reward", "measured", "realised", "IPS [95%]", "SNIPS [95%]", "DR [95%]", "rows", "ESS",
                   "max w", "within"):  # fmt: skip
        t.add_column(column, justify="left" if column in ("target", "reward") else "right")
    for c in checks:
        e = c.estimates
        fmt = "{:.3f}" if c.reward == "accepted" else "{:.2f}"

        def iv(i: Any, fmt: str = fmt) -> str:
            return "-" if i is None else f"{fmt.format(i.estimate)} [{fmt.format(i.low)}, {fmt.format(i.high)}]"

        t.add_row(c.target, c.reward, fmt.format(c.measured), fmt.format(c.realised), iv(e.ips), iv(e.snips),
                  iv(e.dr), f"{e.rows:,}", f"{e.effective_sample_size:,.0f}", f"{e.max_weight:.1f}",
                  "yes" if c.within else "NO")  # fmt: skip
    console.print(t)
    console.print(f"run time {seconds:.1f} s")


def write_check(path: Path, checks: Sequence[OpeCheck]) -> None:
    out = [{"target": c.target, "reward": c.reward, "measured": c.measured, "realised": c.realised,
            "measured_rows": c.measured_rows,
            "within": c.within, "estimates": asdict(c.estimates)} for c in checks]  # fmt: skip
    path.write_text(json.dumps(out, indent=2))
