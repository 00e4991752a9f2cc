"""Benchmark of the hot path's scoring: `LightGBMScorer.score` for one customer x N offers.

A synthetic catalogue of N offers over the demo groups, demo customers, labels from the demo ground
truth, and a model of `trees` trees; then p50 / p99 of one `score` call with the lleaves-compiled model
and with LightGBM (both single-threaded, as in the service).

    python -m loadtests.bench_scoring --offers 100 --trees 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from decisioning.catalogue import Offer
from decisioning.types import Context, CustomerFeatures
from models.demo.customers import generate_customers
from models.encoding import SpecLike
from models.lightgbm_scorer import LightGBMScorer
from models.registry import ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, train_and_register


@dataclass(frozen=True, slots=True)
class Timing:
    engine: str
    p50_us: float
    p99_us: float
    calls: int


def time_score(
    scorer: LightGBMScorer, customers: Sequence[CustomerFeatures], offers: Sequence[Offer], calls: int
) -> Timing:
    """p50 / p99 of one `score` call, cycling through the customers (after a warm-up)."""
    context = Context("web", NOW)
    for customer in customers[:50]:
        scorer.score(customer, context, offers)
    samples = np.empty(calls)
    for i in range(calls):
        customer = customers[i % len(customers)]
        start = time.perf_counter_ns()
        scorer.score(customer, context, offers)
        samples[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(samples, [50, 99]) / 1_000
    return Timing(scorer.engine, float(p50), float(p99), calls)


def run(
    specs: Sequence[SpecLike],
    n_offers: int = 100,
    trees: int = 200,
    calls: int = 5_000,
    root: Path | None = None,
) -> list[Timing]:
    """Train and register the synthetic model under `root` (a temporary directory by default), then
    time both engines."""
    offers = synthetic_offers(n_offers)
    data = synthetic_training_set(specs, offers)
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(root or Path(tmp))
        meta = train_and_register(registry, data, "bench", TrainingConfig(num_trees=trees))
        rows = generate_customers(200, specs, seed=99, now=NOW)
        customers = [CustomerFeatures(cid, values) for cid, values in rows]
        return [
            time_score(registry.load("bench", meta.version, engine=engine), customers, offers, calls)
            for engine in ("lleaves", "lightgbm")
        ]


def main() -> None:
    from policies.loader import load_catalogue

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=100)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--catalogue", type=Path, default=Path(__file__).parents[1] / "policies" / "demo")
    args = parser.parse_args()
    specs = load_catalogue(args.catalogue).features
    for t in run(specs, args.offers, args.trees, args.calls):
        print(f"{t.engine:>8}: 1 customer x {args.offers} offers, {args.trees} trees: "
              f"p50 {t.p50_us:.1f} µs, p99 {t.p99_us:.1f} µs ({t.calls} calls)")  # fmt: skip


if __name__ == "__main__":
    main()
