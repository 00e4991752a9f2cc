"""Per-stage means of a phase, from the service's /metrics, summed over every worker behind the socket.

Each scrape is answered by one worker; `nbo_worker_pid` says which. The scraper opens a few fresh
connections to reach every worker, keeps each worker's latest totals, and subtracts the totals before a
phase from those after it, worker by worker.
"""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Totals = dict[str, tuple[float, float]]  # stage -> (seconds, count)
# The fine stages (service.metrics.StageTimes): wall always, CPU with NBO_STAGE_CPU_TIMERS=true.
STAGE_FAMILIES = ("nbo_decision_stage_detail_seconds", "nbo_decision_stage_detail_cpu_seconds")


def parse(text: str) -> tuple[int, Totals]:
    """(worker pid, stage totals) of one /metrics answer; CPU stages are keyed `cpu:<stage>`."""
    pid, totals = 0, {}
    for family in text_string_to_metric_families(text):
        if family.name == "nbo_worker_pid":
            pid = int(family.samples[0].value)
        if family.name not in STAGE_FAMILIES:
            continue
        prefix = "cpu:" if "cpu" in family.name else ""
        for sample in family.samples:
            stage = prefix + sample.labels["stage"]
            seconds, count = totals.get(stage, (0.0, 0.0))
            if sample.name.endswith("_sum"):
                totals[stage] = (seconds + sample.value, count)
            elif sample.name.endswith("_count"):
                totals[stage] = (seconds, count + sample.value)
    return pid, totals


def scrape(url: str, attempts: int = 8) -> dict[int, Totals]:
    """The totals of every worker reached in `attempts` fresh connections."""
    workers: dict[int, Totals] = {}
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                pid, totals = parse(response.read().decode())
        except OSError:
            continue
        if pid:
            workers[pid] = totals
    return workers


def means_ms(before: dict[int, Totals], after: dict[int, Totals]) -> dict[str, float]:
    """Mean milliseconds per stage between two scrapes, over the workers seen in both.

    >>> means_ms({1: {"load": (1.0, 1000)}}, {1: {"load": (1.5, 2000)}, 2: {"load": (9.0, 9)}})
    {'load': 0.5}
    """
    sums: dict[str, list[float]] = {}
    for pid, totals in after.items():
        if pid not in before:
            continue
        for stage, (seconds, count) in totals.items():
            seconds0, count0 = before[pid].get(stage, (0.0, 0.0))
            acc = sums.setdefault(stage, [0.0, 0.0])
            acc[0] += seconds - seconds0
            acc[1] += count - count0
    return {stage: 1000 * s / n for stage, (s, n) in sums.items() if n > 0}
