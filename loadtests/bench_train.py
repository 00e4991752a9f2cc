"""`nbo train` on a large PostgreSQL history: rows/s of the whole run and its peak memory.

Generates N logged contacts (one presented offer per decision, the demo catalogue's feature schema, a
feature snapshot on every decision, ~12% accepted and ~20% declined in another channel) straight into a
scratch database with COPY, then runs `nbo train` in a subprocess and reads its peak resident memory from
`getrusage(RUSAGE_CHILDREN)`.

    .venv/bin/python -m loadtests.bench_train                 # 1,000,000 contacts
    .venv/bin/python -m loadtests.bench_train --contacts 100000

The scratch database `nbo_bench_train_<pid>` is created on --pg-server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from decisioning.catalogue import feature_vector  # noqa: E402
from decisioning.ports import CustomerSnapshot  # noqa: E402
from decisioning.quality import validate_features  # noqa: E402
from history import upgrade  # noqa: E402
from models.demo.customers import generate_customers  # noqa: E402
from policies.loader import load_catalogue  # noqa: E402

T0 = 1_780_000_000.0
CUSTOMERS = 20_000
CHUNK = 100_000


def customer_vectors(catalogue, now: float) -> list[tuple[str, str, float]]:
    """(customer id, features JSON, a propensity driver) for the synthetic customers."""
    rows = generate_customers(CUSTOMERS, catalogue.features, seed=11, now=now)
    out = []
    for cid, values in rows:
        v = validate_features(catalogue.features, cid, CustomerSnapshot(cid, values), now).values
        driver = (float(v.get("credit_score") or 600) - 600) / 150 + (0.8 if v.get("has_credit_card") else 0)
        out.append((cid, orjson.dumps(feature_vector(catalogue.features, v)).decode(), driver))
    return out


async def generate(dsn: str, n: int, days: float) -> None:
    catalogue = load_catalogue(ROOT / "policies" / "demo")
    customers = customer_vectors(catalogue, T0)
    offers = [(o.id, o.group) for o in catalogue.offers if "web" in o.treatments]
    rng = np.random.default_rng(5)
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(0, n, CHUNK):
            size = min(CHUNK, n - start)
            await _copy_chunk(conn, rng, start, size, n, days, customers, offers, catalogue)
            print(f"  generated {start + size:,}/{n:,}", file=sys.stderr)
    finally:
        await conn.close()


async def _copy_chunk(conn, rng, start, size, n, days, customers, offers, catalogue) -> None:
    at = T0 + (np.arange(start, start + size) / n) * days * 86_400
    who = rng.integers(len(customers), size=size)
    which = rng.integers(len(offers), size=size)
    u = rng.random(size)
    decisions, contacts, responses = [], [], []
    for k in range(size):
        i = start + k
        cid, features, driver = customers[who[k]]
        offer_id, group = offers[which[k]]
        when = datetime.fromtimestamp(float(at[k]), UTC)
        did = f"d-{i:08d}"
        p = 1 / (1 + np.exp(-(-2.2 + driver + (which[k] % 5) * 0.15)))
        decisions.append((did, None, cid, when, "web", "home_hero", None, False, "m-bench", catalogue.version,
                          "{}", "[]", features, catalogue.feature_schema))  # fmt: skip
        contacts.append((did, offer_id, cid, when, "web", "inbound", group, "presented", None, "home_hero", 1,
                         None, None, None, 1.0, "m-bench", catalogue.version, None, None))  # fmt: skip
        if u[k] < p:
            responses.append((f"r-{i}", cid, did, offer_id, group, "call_centre", "accepted", when, when))
        elif u[k] > 0.8:
            responses.append((f"r-{i}", cid, did, offer_id, group, "web", "declined", when, when))
    await conn.copy_records_to_table("decisions", records=decisions, columns=DECISION_COLUMNS)
    await conn.copy_records_to_table("contacts", records=contacts, columns=CONTACT_COLUMNS)
    await conn.copy_records_to_table("responses", records=responses, columns=RESPONSE_COLUMNS)


DECISION_COLUMNS = ["decision_id", "request_id", "customer_id", "decided_at", "channel", "placement", "intent",
                    "control_group", "model_version", "catalogue_version", "context", "candidates", "features",
                    "feature_schema"]  # fmt: skip
CONTACT_COLUMNS = ["contact_id", "offer_id", "customer_id", "contacted_at", "channel", "direction", "group_id",
                   "outcome", "treatment", "placement", "rank", "propensity", "value", "priority",
                   "selection_probability", "model_version", "catalogue_version", "campaign",
                   "decision_id"]  # fmt: skip
RESPONSE_COLUMNS = ["response_id", "customer_id", "decision_id", "offer_id", "group_id", "channel", "outcome",
                    "responded_at", "recorded_at"]  # fmt: skip


def train(url: str, days: float) -> tuple[float, str]:
    with tempfile.TemporaryDirectory() as models:
        env = {**os.environ, "NBO_DATABASE_URL": url, "NBO_MODEL_DIR": models}
        until = datetime.fromtimestamp(T0 + (days + 8) * 86_400, UTC).isoformat()
        started = time.perf_counter()
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "nbo"), "train", "--name", "bench", "--until", until],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=90.0)
    parser.add_argument("--pg-server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    name = f"nbo_bench_train_{os.getpid()}"
    admin = f"{args.pg_server}/test"
    asyncio.run(_sql(admin, f"CREATE DATABASE {name}"))
    try:
        url = f"{args.pg_server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
        upgrade(url)
        started = time.perf_counter()
        asyncio.run(generate(f"{args.pg_server}/{name}", args.contacts, args.days))
        asyncio.run(_sql(f"{args.pg_server}/{name}", "ANALYZE"))
        print(f"generated {args.contacts:,} contacts in {time.perf_counter() - started:.1f}s (COPY)")
        seconds, out = train(url, args.days)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(out.strip())
        print(f"nbo train: {args.contacts:,} contacts in {seconds:.1f}s = {args.contacts / seconds:,.0f} rows/s; "
              f"peak memory {peak_mb:,.0f} MB (maxrss)")  # fmt: skip
    finally:
        asyncio.run(_sql(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _sql(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
