"""Benchmark of the pure decision core: decisions per second on one core, and p50/p99 of one decision.

The demo catalogue's 33 offers cloned to 100 (same rules, groups, treatments and all 13 contact policies),
demo customers with a history summary of ~20 contacts and responses each, and a 200-tree LightGBM model
that knows all 100 offers. One decision = feature validation + eligibility + contact policies + one
vectorised scoring call + arbitration (no explanation, as on the web hot path; `--explain` to include it).

    make bench-core                          # pinned to one core, OMP_NUM_THREADS=1
    python -m loadtests.bench_core --decisions 20000 --explain
    make bench-core-instructions             # instructions per decision under callgrind (see below)

Decisions per second move with whatever else the machine runs. `--instructions` counts instead: the
model is trained here, then the same decisions are made again under valgrind's callgrind, which counts
the instructions executed inside the measured loop only (`--toggle-collect` on the C function that
drives it). The count is the same run after run whatever the load, so two commits compare exactly;
it is a count, not a time (instructions per second differ by code).

Goal (issue 2): at least 5,000 decisions/s (about 0.2 ms each) with the compiled model.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

from decisioning.catalogue import Catalogue, Offer
from decisioning.engine import DecisionRequest, decide
from decisioning.ports import CustomerSnapshot, Scorer
from decisioning.quality import validate_features
from decisioning.summary import HistorySummary
from decisioning.types import DAY, ContactEvent, Context, Outcome
from models.demo.customers import generate_customers
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainingConfig, train_and_register
from policies.loader import load_catalogue

DEMO = Path(__file__).resolve().parents[1] / "policies" / "demo"
CHANNELS = ("web", "mobile", "call_centre")
OUTCOMES = (Outcome.PRESENTED,) * 6 + (Outcome.CLICKED, Outcome.DECLINED, Outcome.ACCEPTED, Outcome.SENT)


def catalogue_of(n: int) -> Catalogue:
    """The demo catalogue with its offers cloned (`card_gold`, `card_gold_2`, ...) up to `n` offers."""
    demo = load_catalogue(DEMO)
    offers: list[Offer] = []
    for i in range(n):
        base = demo.offers[i % len(demo.offers)]
        copy = i // len(demo.offers)
        offers.append(base if copy == 0 else replace(base, id=f"{base.id}_{copy + 1}"))
    return replace(demo, offers=tuple(offers), version=f"{demo.version}-x{n}")


def summaries(catalogue: Catalogue, customers: int, now: float, rng: np.random.Generator) -> list[HistorySummary]:
    offers = catalogue.offers
    out = []
    for c in range(customers):
        events = []
        for k in range(int(rng.integers(5, 35))):
            offer = offers[int(rng.integers(len(offers)))]
            at = now - float(rng.uniform(0, 60)) * DAY
            outcome = OUTCOMES[int(rng.integers(len(OUTCOMES)))]
            events.append(ContactEvent(at, offer.id, offer.group, CHANNELS[k % 3], outcome, f"d-{c}-{k}"))
        out.append(HistorySummary().with_events(events))
    return out


def time_decisions(catalogue: Catalogue, scorer: Scorer, people: list, histories: list, n: int, explain: bool):
    now = time.time()
    samples = np.empty(n)
    offers_seen = 0
    for i in range(n):
        cid, values = people[i % len(people)]
        start = time.perf_counter_ns()
        customer = validate_features(catalogue.features, cid, CustomerSnapshot(cid, values, {"*": now}), now)
        context = Context(CHANNELS[i % 3], now, placement="home_hero")
        decision = decide(catalogue, DecisionRequest(f"d-{i}", customer, context, 3, explain),
                          histories[i % len(histories)], scorer)  # fmt: skip
        samples[i] = time.perf_counter_ns() - start
        offers_seen += len(decision.offers)
    return samples / 1000.0, offers_seen / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offers", type=int, default=100)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--counted-run", metavar="REGISTRY", help=argparse.SUPPRESS)  # the valgrind child
    args = parser.parse_args()
    if args.counted_run:
        counted_run(args)
        return
    catalogue = catalogue_of(args.offers)
    rng = np.random.default_rng(1)
    now = time.time()
    data = synthetic_training_set(catalogue.features, catalogue.offers)
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(Path(tmp))
        meta = train_and_register(registry, data, "bench", TrainingConfig(num_trees=args.trees))
        print(f"catalogue: {len(catalogue.offers)} offers, {len(catalogue.policies)} contact policies; "
              f"model: {args.trees} trees over {len(data.encoder.columns)} columns")  # fmt: skip
        if args.instructions:
            registry.load("bench", meta.version, engine="lleaves")  # compiles, and caches beside the model
            count_instructions(args, Path(tmp), meta.version)
            return
        people = generate_customers(2_000, catalogue.features, seed=3, now=now)
        histories = summaries(catalogue, 500, now, rng)
        for engine in ("lleaves", "lightgbm"):
            scorer = registry.load("bench", meta.version, engine=engine)
            time_decisions(catalogue, scorer, people, histories, 500, args.explain)  # warm-up
            us, shown = time_decisions(catalogue, scorer, people, histories, args.decisions, args.explain)
            p50, p99 = np.percentile(us, [50, 99])
            print(f"{engine:>8}: {1e6 / us.mean():7.0f} decisions/s  mean {us.mean():6.1f} µs  p50 {p50:6.1f} µs  "
                  f"p99 {p99:6.1f} µs  ({args.decisions} decisions, {shown:.2f} offers each)")  # fmt: skip


# The C function that runs the counted loop: `deque(map(one, ...), maxlen=0)` consumes the decisions
# inside it, and nothing else in a decision calls it (a deque is never extended on the decision path).
COUNTED_FUNCTION = "deque_extend"
COUNTED_NOW = 1.8e9  # a fixed clock: the same customers, histories and decisions in every counted run
WARM_UP = 100


def count_instructions(args: argparse.Namespace, registry: Path, version: str) -> None:
    """Run `counted_run` under callgrind and print the instructions per decision."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    n = min(args.decisions, 1_000)  # ~50x slower under valgrind: a few hundred decisions are plenty
    out = registry / "callgrind.out"
    command = [
        valgrind, "--tool=callgrind", f"--toggle-collect={COUNTED_FUNCTION}", f"--callgrind-out-file={out}",
        sys.executable, "-m", "loadtests.bench_core", "--counted-run", str(registry), "--decisions", str(n),
        "--offers", str(args.offers), *(["--explain"] if args.explain else []),
    ]  # fmt: skip
    print(f"counting {n} decisions under callgrind (a minute or two) ...", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"the counted run failed ({done.returncode}):\n{done.stdout}{done.stderr[-3000:]}")
    total = callgrind_total(out.read_text())
    kind = "explained, 5 offers asked" if args.explain else "3 offers asked"
    print(f"{total / n / 1000:,.0f}k instructions per decision ({n} decisions, {kind}, {version}, lleaves)")


def callgrind_total(text: str) -> int:
    """The instruction count of a callgrind output file (its `summary:` line, else `totals:`).

    >>> callgrind_total("events: Ir\nsummary: 1523210836\ntotals: 1523210836\n")
    1523210836
    """
    found = re.search(r"^summary:\s*(\d+)", text, re.M) or re.search(r"^totals:\s*(\d+)", text, re.M)
    if found is None:
        raise ValueError("no summary or totals line: not a callgrind output file")
    return int(found.group(1))


def counted_run(args: argparse.Namespace) -> None:
    """The valgrind child: the same seeded inputs, a warm-up, then the counted decisions."""
    catalogue = catalogue_of(args.offers)
    registry = ModelRegistry(Path(args.counted_run))
    scorer = registry.load("bench", registry.list_versions("bench")[-1].version, engine="lleaves")
    people = generate_customers(200, catalogue.features, seed=3, now=COUNTED_NOW)
    histories = summaries(catalogue, 100, COUNTED_NOW, np.random.default_rng(1))
    max_offers = 5 if args.explain else 3

    def one(i: int) -> None:
        cid, values = people[i % len(people)]
        snapshot = CustomerSnapshot(cid, values, {"*": COUNTED_NOW})
        customer = validate_features(catalogue.features, cid, snapshot, COUNTED_NOW)
        context = Context(CHANNELS[i % 3], COUNTED_NOW, placement="home_hero")
        request = DecisionRequest(f"d-{i}", customer, context, max_offers, args.explain)
        decide(catalogue, request, histories[i % len(histories)], scorer)

    for i in range(WARM_UP):
        one(i)
    deque(map(one, range(WARM_UP, WARM_UP + args.decisions)), maxlen=0)  # counted: see COUNTED_FUNCTION


if __name__ == "__main__":
    main()
