"""Benchmark of the overnight batch: N generated customers x 50 offers, in process and on Dask.

The demo catalogue's offers cloned to 50 (same rules, groups, treatments, 13 contact policies), a
100-tree LightGBM model that knows all 50 offers, generated customers (10% with a history summary of ~10
contacts and responses), channel e-mail, top 3. Figures: customers/s, customer-offer pairs/s and peak
memory (maxrss of the driver and of its largest worker, resource.getrusage incl. children).

    make bench-batch                                     # 1M customers
    python -m loadtests.bench_batch --customers 100000   # smaller
    python -m loadtests.bench_batch --customers 100000 --engines inprocess

Goal (issue "Outbound: overnight prescoring"): 1M x 50 in under 5 minutes, under 4 GiB peak.
The generated input is cached in var/bench/ (generating 1M customers takes a few minutes itself).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from decisioning.summary import HistorySummary
from decisioning.types import DAY, ContactEvent, Outcome

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "policies" / "demo"
WORK = ROOT / "var" / "bench"
OFFERS = 50
AS_OF = 1_790_000_000.0
OUTCOMES = (Outcome.PRESENTED, Outcome.SENT, Outcome.SENT, Outcome.CLICKED, Outcome.DECLINED, Outcome.IGNORED)


def catalogue_dir(offers: int) -> Path:
    """The demo catalogue with its offers cloned (`card_gold`, `card_gold_2`...) up to `offers`, as YAML."""
    target = WORK / f"catalogue-{offers}"
    if target.exists():
        return target
    shutil.copytree(DEMO, target)
    entries = []
    for name in ("offers.yaml", "offers_care.yaml"):
        entries += yaml.safe_load((target / name).read_text())["offers"]
    (target / "offers_care.yaml").unlink()
    cloned = [dict(entries[i % len(entries)]) for i in range(offers)]
    for i, offer in enumerate(cloned):
        if i >= len(entries):
            offer["id"] = f"{offer['id']}_{i // len(entries) + 1}"
    (target / "offers.yaml").write_text(yaml.safe_dump({"offers": cloned}, sort_keys=False))
    return target


def model_dir(catalogue: Path) -> Path:
    from models.registry import ModelRegistry
    from models.synthetic import synthetic_training_set
    from models.training import TrainingConfig, train_and_register
    from policies.loader import load_catalogue

    target = WORK / f"models-{catalogue.name}"
    if not (target / "nbo").exists():
        cat = load_catalogue(catalogue)
        data = synthetic_training_set(cat.features, cat.offers, rows=60_000)
        train_and_register(ModelRegistry(target), data, "nbo", TrainingConfig(num_trees=100))
    return target


def customers_file(n: int, catalogue: Path) -> Path:
    from models.demo.customers import generate_customers
    from policies.loader import load_catalogue

    path = WORK / f"customers-{n}.parquet"
    if path.exists():
        return path
    specs = load_catalogue(catalogue).features
    tmp = path.with_suffix(".tmp")
    writer = None
    for start in range(0, n, 50_000):
        people = generate_customers(min(50_000, n - start), specs, seed=start, now=AS_OF)
        columns = {"customer_id": [f"c-{start + i:07d}" for i in range(len(people))]}
        columns |= {s.name: [v.get(s.name) for _, v in people] for s in specs}
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table.cast(writer.schema))
        print(f"  generated {start + len(people):,} customers", flush=True)
    writer.close()
    tmp.replace(path)
    return path


def summaries(n: int, catalogue: Path, share: float = 0.1) -> dict[str, HistorySummary]:
    from policies.loader import load_catalogue

    offers = load_catalogue(catalogue).offers
    rng = np.random.default_rng(0)
    out = {}
    for c in np.flatnonzero(rng.random(n) < share):
        events = []
        for k in range(int(rng.integers(5, 15))):
            o = offers[int(rng.integers(len(offers)))]
            at = AS_OF - float(rng.uniform(0, 60)) * DAY
            outcome = OUTCOMES[int(rng.integers(len(OUTCOMES)))]
            events.append(ContactEvent(at, o.id, o.group, ("web", "email")[k % 2], outcome, f"d-{c}-{k}"))
        out[f"c-{int(c):07d}"] = HistorySummary().with_events(events)
    return out


def run_one(engine_name: str, n: int, workers: int, partition_size: int) -> dict:
    """One run of one engine, in this (fresh) process: the figures as a dict."""
    from batch.engines import engine_named
    from batch.job import PrescoreJob
    from batch.run import prescore

    catalogue = catalogue_dir(OFFERS)
    features, models = customers_file(n, catalogue), model_dir(catalogue)
    history = summaries(n, catalogue)
    run_id = f"bench-{engine_name}-{n}-{int(time.time())}"
    job = PrescoreJob(run_id, catalogue, models, "nbo", "email", 3, AS_OF)
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = sum(u.ru_utime + u.ru_stime for u in before)
    start = time.perf_counter()
    engine = engine_named(engine_name, workers=workers)
    try:
        result = prescore(job, features, WORK / f"{run_id}.parquet", run_dir=WORK / "runs" / run_id, engine=engine,
                          summaries=history, partition_size=partition_size)  # fmt: skip
    finally:
        engine.close()
    seconds = time.perf_counter() - start
    shutil.rmtree(WORK / "runs" / run_id, ignore_errors=True)
    (WORK / f"{run_id}.parquet").unlink(missing_ok=True)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # CPU seconds of the run (driver and its finished workers): on a shared machine the wall time says how
    # busy the machine was as much as how fast the batch is.
    used = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(u.ru_utime + u.ru_stime for u in used) - cpu_before
    return {
        "engine": engine_name, "customers": result.stats.customers, "offers": OFFERS, "seconds": round(seconds, 1),
        "customers_per_s": round(result.stats.customers / seconds), "pairs_per_s": round(n * OFFERS / seconds),
        "driver_peak_mib": round(own), "largest_worker_peak_mib": round(child),
        "peak_bound_mib": round(own + workers * child), "with_offers": result.stats.with_offers,
        "cpu_seconds": round(cpu, 1), "load_average": round(os.getloadavg()[0], 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--engines", default="inprocess,dask")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partition-size", type=int, default=25_000)
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        print(json.dumps(run_one(args.run_one, args.customers, args.workers, args.partition_size)))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    catalogue = catalogue_dir(OFFERS)
    customers_file(args.customers, catalogue)
    model_dir(catalogue)
    for engine in args.engines.split(","):
        # Each engine in a fresh process, so that each peak memory figure is its own.
        cmd = [sys.executable, "-m", "loadtests.bench_batch", "--run-one", engine,
               "--customers", str(args.customers), "--workers", str(args.workers),
               "--partition-size", str(args.partition_size)]  # fmt: skip
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(figures))
        goal = "met" if figures["seconds"] * 1_000_000 / args.customers < 300 and figures["peak_bound_mib"] < 4096 \
            else "NOT met"  # fmt: skip
        print(f"{engine}: {figures['customers']:,} customers x {OFFERS} offers in {figures['seconds']} s = "
              f"{figures['pairs_per_s']:,} pairs/s; peak {figures['driver_peak_mib']} MiB driver + "
              f"{args.workers} x {figures['largest_worker_peak_mib']} MiB workers; {figures['cpu_seconds']} CPU-s "
              f"(load {figures['load_average']}); 1M goal {goal}"
              + ("" if args.customers == 1_000_000 else " (extrapolated)"))


if __name__ == "__main__":
    main()
