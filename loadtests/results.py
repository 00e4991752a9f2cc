"""The results of `make bench`: one row per (round, server, phase), medians over rounds, the issue's goals,
a rich table, and the JSON file under `loadtests/results/<date>-<commit>/`.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from loadtests.openloop import PERCENTILES, percentile_key

RESULTS = Path(__file__).with_name("results")
BASELINE, STACK, EMBEDDED = "scoring-only", "nbo-stack", "nbo-embedded"
SATURATION = "saturation"


@dataclass
class Measurement:
    """One phase of one server in one round."""

    round: int
    server: str
    phase: str  # "open-300", "open-500", "saturation"
    requests: int
    decisions: int
    errors: int
    elapsed_s: float
    latency_ms: dict[str, float]
    cpu_s: dict[str, float]  # server, redis, postgres
    stages_ms: dict[str, float] = field(default_factory=dict)
    error_statuses: dict[str, int] = field(default_factory=dict)  # open loop only: wrk counts non-2xx in all

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def derived(self) -> dict[str, float]:
        """Rates and CPU per request / per decision (ms), from the raw counts."""
        out = {"rps": self.rps, "decisions_per_s": self.decisions / self.elapsed_s if self.elapsed_s else 0.0}
        for where, seconds in self.cpu_s.items():
            out[f"cpu_ms_per_request_{where}"] = 1000 * seconds / self.requests if self.requests else 0.0
            out[f"cpu_ms_per_decision_{where}"] = 1000 * seconds / self.decisions if self.decisions else 0.0
        return out

    def flat(self) -> dict[str, float]:
        errors = {"errors": float(self.errors)}
        stages = {f"stage_{k}_ms": v for k, v in self.stages_ms.items()}
        return {**self.derived(), **self.latency_ms, **errors, **stages}


def medians(rows: Sequence[Measurement]) -> dict[tuple[str, str], dict[str, float]]:
    """Per (server, phase): the median over rounds of every figure."""
    groups: dict[tuple[str, str], list[dict[str, float]]] = {}
    for row in rows:
        groups.setdefault((row.server, row.phase), []).append(row.flat())
    return {key: _median_of(flats) for key, flats in groups.items()}


def _median_of(flats: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for f in flats for k in f}
    return {k: statistics.median(f[k] for f in flats if k in f) for k in sorted(keys)}


@dataclass(frozen=True)
class Goal:
    name: str
    measured: float
    target: float
    passed: bool


def goals(m: dict[tuple[str, str], dict[str, float]], core_per_s: float | None, slow: str, fast: str) -> list[Goal]:
    """The issue's must-show checks, on the medians. `slow`/`fast`: the 300/s and 500/s phase names."""
    sat = {s: m.get((s, SATURATION), {}) for s in (BASELINE, STACK, EMBEDDED)}
    nan = float("nan")
    ratio, embedded = _ratio(sat[STACK], sat[BASELINE]), _ratio(sat[EMBEDDED], sat[STACK])
    checks = [
        Goal("stack saturation / scoring-only saturation (req/s)", ratio, 1.5, ratio >= 1.5),
        _at_most(f"stack p99 at {fast} (ms)", m.get((STACK, fast), {}).get("p99_ms", nan), 5.0),
        Goal("embedded saturation / stack saturation (req/s)", embedded, 1.0, embedded >= 1.0),
        _below(f"embedded p99 at {slow} (ms)", m.get((EMBEDDED, slow), {}).get("p99_ms", nan), 5.0),
        _at_most("stack server CPU per decision at saturation (ms)", sat[STACK].get("cpu_ms_per_decision_server", nan),
                 0.7),
    ]
    if core_per_s is not None:
        checks.append(Goal("core decisions/s on one core (make bench-core)", core_per_s, 5000, core_per_s >= 5000))
    return checks


def _ratio(a: dict[str, float], b: dict[str, float]) -> float:
    return a.get("rps", float("nan")) / b["rps"] if b.get("rps") else float("nan")


def _at_most(name: str, value: float, target: float) -> Goal:
    return Goal(name, value, target, value <= target)


def _below(name: str, value: float, target: float) -> Goal:
    return Goal(name, value, target, value < target)


def table(m: dict[tuple[str, str], dict[str, float]], rounds: int) -> Table:
    """The medians as a rich table, one row per server and phase."""
    t = Table(title=f"make bench: medians of {rounds} interleaved round(s)")
    for column in ("server", "phase", "req/s", "dec/s", "errors", *(f"p{p:g}" for p in PERCENTILES),
                   "CPU ms/req server", "Redis", "PG", "stages (mean ms)"):  # fmt: skip
        t.add_column(column, justify="left" if column in ("server", "phase", "stages (mean ms)") else "right")
    for (server, phase), f in sorted(m.items()):
        stages = ", ".join(f"{k[6:-3]} {v:.2f}" for k, v in f.items() if k.startswith("stage_") and "cpu:" not in k)
        t.add_row(server, phase, f"{f['rps']:,.0f}", f"{f['decisions_per_s']:,.0f}", f"{f['errors']:.0f}",
                  *(f"{f.get(percentile_key(p), float('nan')):.2f}" for p in PERCENTILES),
                  f"{f.get('cpu_ms_per_request_server', 0):.2f}", f"{f.get('cpu_ms_per_request_redis', 0):.2f}",
                  f"{f.get('cpu_ms_per_request_postgres', 0):.2f}", stages)  # fmt: skip
    return t


def print_report(m: dict[tuple[str, str], dict[str, float]], checks: Sequence[Goal], rounds: int) -> None:
    console = Console(width=200)
    console.print(table(m, rounds))
    for g in checks:
        mark = "[green]PASS[/]" if g.passed else "[red]MISS[/]"
        console.print(f"{mark} {g.name}: {g.measured:,.2f} (goal {g.target:g})")


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write(rows: Sequence[Measurement], checks: Sequence[Goal], meta: dict[str, Any], root: Path = RESULTS) -> Path:
    """Write results.json under `<root>/<date>-<commit>/`; its path."""
    now = datetime.now(UTC)
    directory = root / f"{now:%Y%m%dT%H%M%SZ}-{meta.get('commit') or commit()}"
    directory.mkdir(parents=True, exist_ok=True)
    m = medians(rows)
    document = {
        "meta": {**meta, "finished_at": now.isoformat()},
        "rounds": [{**asdict(r), **r.derived()} for r in rows],
        "medians": [{"server": s, "phase": p, **f} for (s, p), f in sorted(m.items())],
        "goals": [asdict(g) for g in checks],
    }
    path = directory / "results.json"
    path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return path
