"""Run several policies of one simulated bank side by side, one process each (a pool of `workers`).

Each policy gets its own scratch directory (SQLite history, model registry) and its own service; they
share nothing but the seed, so the bank, the visits and the campaigns are the same for all of them.
Progress (one tick per simulated day per policy) comes back through a queue for the progress bar.

>>> results = compare(SimulationSpec(customers=1000, days=3, seed=1), workers=2)  # doctest: +SKIP
>>> results["oracle"]["value_per_contact"] > results["random"]["value_per_contact"]  # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from simulation.run import RunConfig, simulate
from simulation.wiring import POLICIES

Tick = Callable[[str, int], None]


@dataclass(frozen=True)
class SimulationSpec:
    customers: int
    days: int
    seed: int
    policies: tuple[str, ...] = POLICIES
    retrain_days: int = 2
    budgets: bool = True
    logs: Mapping[str, Path] = field(default_factory=dict)  # policy -> where its decision log goes
    log_targets: tuple[str, ...] = ()  # the target policies whose probabilities the logs carry


def run_policy(spec: SimulationSpec, policy: str, queue: Any = None) -> dict[str, Any]:
    """One policy's run, in this process; its summary (with run time and this process's peak memory)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two policies per two cores: no OpenMP spinning
    started = time.perf_counter()
    log_path = spec.logs.get(policy)
    with tempfile.TemporaryDirectory(prefix=f"nbo-sim-{policy}-") as workdir:
        config = RunConfig(
            spec.customers, spec.days, spec.seed, policy, Path(workdir), spec.retrain_days,
            spec.log_targets, spec.budgets, log=log_path is not None,
        )  # fmt: skip
        tick = (lambda day: queue.put((policy, day))) if queue is not None else None
        stats, log = asyncio.run(simulate(config, tick))
    if log_path is not None:
        log.write(log_path)
    stats.seconds = round(time.perf_counter() - started, 2)
    stats.peak_memory_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return stats.summary()


def compare(spec: SimulationSpec, workers: int = 2, tick: Tick | None = None) -> dict[str, dict[str, Any]]:
    """Every policy of `spec`, `workers` at a time (1: in this process); policy -> summary."""
    if workers <= 1:
        return {p: run_policy(spec, p, _Direct(tick) if tick else None) for p in spec.policies}
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with context.Manager() as manager, ProcessPoolExecutor(workers, mp_context=context) as pool:
        queue = manager.Queue()
        # The NBO run is the longest (it trains): started first so that it is not the last one waiting.
        ordered = sorted(spec.policies, key=lambda p: p != "nbo")
        futures = {p: pool.submit(run_policy, spec, p, queue) for p in ordered}
        _drain(queue, list(futures.values()), tick)
        return {p: futures[p].result() for p in spec.policies}


def _drain(queue: Any, futures: Sequence[Future[Any]], tick: Tick | None) -> None:
    while True:
        done = all(f.done() for f in futures)
        while not queue.empty():
            policy, day = queue.get()
            if tick is not None:
                tick(policy, day)
        if done:
            return
        time.sleep(0.2)


class _Direct:
    """A queue that calls the tick at once (a run in this process)."""

    def __init__(self, tick: Tick) -> None:
        self.tick = tick

    def put(self, item: tuple[str, int]) -> None:
        self.tick(*item)


def with_policies(spec: SimulationSpec, policies: Sequence[str]) -> SimulationSpec:
    unknown = set(policies) - set(POLICIES)
    if unknown:
        raise ValueError(f"unknown policies {sorted(unknown)}; known: {', '.join(POLICIES)}")
    return replace(spec, policies=tuple(policies))
