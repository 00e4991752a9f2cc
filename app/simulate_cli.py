"""`nbo simulate` and `nbo simulate-ope`: the closed-loop simulator (simulation/, docs/simulation.md).

`nbo simulate --customers N --days D --seed S [--json FILE] [--plot FILE.png]` runs the four policies
through the service, a process each (`--workers`), and prints the table, run time and peak memory.
`nbo simulate-ope` checks offline evaluation against the simulator (simulation/ope.py).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

POLICIES = ("nbo", "random", "push", "oracle")  # simulation.wiring's, not imported: `nbo --help` stays fast

Customers = Annotated[int, typer.Option(min=10, help="Customers of the simulated bank")]
Days = Annotated[int, typer.Option(min=1, max=365, help="Simulated days")]
Seed = Annotated[int, typer.Option(help="Seed: the same seed gives the same figures")]


def _fail(message: str) -> None:
    Console(stderr=True).print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(2)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("days"), TimeElapsedColumn(), console=console)  # fmt: skip


def _console() -> Console:
    """The terminal's width, or 140 columns for a file or a pipe (rich's 80 would fold the tables)."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def _peak_memory_mb() -> tuple[float, float]:
    """(this process, the largest child process) peak resident memory in MB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def simulate(
    customers: Customers = 50_000,
    days: Days = 30,
    seed: Seed = 1,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the figures per policy as JSON")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of value per contact per day per policy")] = None,
    policies: Annotated[str, typer.Option(help="Comma-separated: nbo, random, push, oracle")] = ",".join(POLICIES),
    workers: Annotated[int, typer.Option(min=1, max=8, help="Processes running policies at once")] = 2,
    retrain_days: Annotated[int, typer.Option(min=0, help="The NBO retrains every N days (0: never)")] = 2,
    log: Annotated[Path | None, typer.Option(help="Write the NBO's decision log (CSV or Parquet) for OPE")] = None,
) -> None:
    """Simulate a bank day by day through the real decision path, for each policy; compare them."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from simulation.compare import SimulationSpec, compare, with_policies
    from simulation.report import plot as write_plot
    from simulation.report import print_report, write_json

    try:
        spec = with_policies(SimulationSpec(customers, days, seed, retrain_days=retrain_days), policies.split(","))
    except ValueError as error:
        _fail(str(error))
    if log is not None:
        spec = SimulationSpec(customers, days, seed, spec.policies, retrain_days, logs={"nbo": log},
                              log_targets=("push", "oracle", "random"))  # fmt: skip
    console = Console(stderr=True)
    started = time.perf_counter()
    with _progress(console) as progress:
        tasks = {p: progress.add_task(p, total=days) for p in spec.policies}
        results = compare(spec, workers, lambda policy, _day: progress.advance(tasks[policy]))
    seconds = time.perf_counter() - started
    out = _console()
    print_report(out, results)
    own, child = _peak_memory_mb()
    child = max(child, *(r["peak_memory_mb"] for r in results.values()))
    out.print(f"run time {seconds:.1f} s on {workers} worker(s); peak memory: largest policy process "
              f"{child:.0f} MB, this process {own:.0f} MB")  # fmt: skip
    run = {"customers": customers, "days": days, "seed": seed, "workers": workers, "retrain_days": retrain_days,
           "seconds": round(seconds, 1), "peak_memory_mb": round(max(own, child), 1)}  # fmt: skip
    if json_out is not None:
        write_json(json_out, results, run)
    if plot is not None:
        write_plot(plot, results, f"{customers:,} customers, {days} days, seed {seed}")


def simulate_ope(
    customers: Customers = 50_000,
    days: Days = 1,
    seed: Seed = 1,
    logging_policy: Annotated[str, typer.Option("--logging", help="The policy that makes the logs")] = "random",
    targets: Annotated[str, typer.Option(help="Comma-separated target policies")] = "push,oracle",
    log: Annotated[Path | None, typer.Option(help="Also write the log file (CSV or Parquet)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the check as JSON")] = None,
    workers: Annotated[int, typer.Option(min=1, max=8)] = 2,
) -> None:
    """Estimate target policies offline from a logging policy's simulated logs, and check each estimate's
    interval against the value the simulator measures when it runs that target."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from simulation.ope import OpeSpec, check_ope, print_check, write_check

    try:
        spec = OpeSpec(customers, days, seed, logging_policy, tuple(targets.split(",")), log)
    except ValueError as error:
        _fail(str(error))
    started = time.perf_counter()
    checks = check_ope(spec, workers)
    print_check(_console(), checks, time.perf_counter() - started)
    if json_out is not None:
        write_check(json_out, checks)
    if not all(c.within for c in checks):
        sys.exit(1)


def register(cli: typer.Typer) -> None:
    """Add the commands to the `nbo` CLI."""
    cli.command("simulate")(simulate)
    cli.command("simulate-ope")(simulate_ope)
