"""`nbo demo`: a synthetic retail bank to decide on, built in well under a minute.

Customers with realistic, correlated features (written to the features file the embedded mode loads), a
simulated past contact history with responses drawn from a hidden ground truth (written to the contact
history), and the demo LightGBM model trained on it, registered as champion and compiled once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from app.settings import Settings
from decisioning.types import FeatureValue
from history.migrate import upgrade
from history.sql import SqlHistory
from models.demo import SimulatedHistory, generate_customers, simulate_history, train_demo_model
from models.registry import ModelRegistry
from policies.loader import load_catalogue

CHUNK = 1000


def marker(settings: Settings) -> Path:
    return settings.model_dir / "demo.json"


def demo_ready(settings: Settings) -> bool:
    """The demo was built for this catalogue, and its features file is there."""
    path = marker(settings)
    if not path.exists() or (settings.features_file is not None and not settings.features_file.exists()):
        return False
    built = json.loads(path.read_text())
    return built.get("catalogue_version") == load_catalogue(settings.catalogue_dir).version


async def build_demo(settings: Settings, *, customers: int, days: int, seed: int) -> str:
    catalogue = load_catalogue(settings.catalogue_dir)
    now = time.time()
    rows = generate_customers(customers, catalogue.features, seed=seed, now=now)
    write_features(settings.features_file or Path("var/demo/customers.parquet"), rows)
    simulated = simulate_history(rows, catalogue, days=days, seed=seed, now=now)
    await write_history(settings, simulated)
    registry = ModelRegistry(settings.model_dir)
    meta = train_demo_model(simulated, catalogue, registry, name=settings.model_name)
    registry.scorer(settings.model_name, compiled=settings.model_compiled)  # compile once, cached beside the model
    summary = {
        "catalogue_version": catalogue.version,
        "model_version": meta.version,
        "customers": len(rows),
        "decisions": len(simulated.decisions),
        "sends": len(simulated.sends),
        "responses": len(simulated.responses),
        "holdout_auc": meta.metrics.get("holdout", {}).get("auc"),
    }
    marker(settings).write_text(json.dumps(summary, indent=2))
    return ", ".join(f"{k}={v}" for k, v in summary.items())


def try_it(settings: Settings) -> str:
    """What to try once `nbo serve` runs: an event that fires one of the catalogue's triggers, and how to
    read its delivery from another terminal (the embedded queue lives in the service's process)."""
    triggers = load_catalogue(settings.catalogue_dir).triggers
    if not triggers:
        return ""
    names = ", ".join(f"{t.name} ({t.channel})" for t in triggers)
    event = '{"customer_id": "c-000042", "type": "card_declined", "attributes": {"amount": 54.2}}'
    return (
        f"triggers: {names}. Try one once the service runs:\n"
        f"  curl -s localhost:{settings.port}/v1/events -H 'content-type: application/json' -d '{event}'\n"
        f"  nbo triggers read          # the delivery, read from the running service"
    )


def write_features(path: Path, rows: Sequence[tuple[str, dict[str, FeatureValue]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(rows[0][1]) if rows else []
    columns = {"customer_id": [cid for cid, _ in rows]}
    columns.update({name: [values.get(name) for _, values in rows] for name in names})
    pq.write_table(pa.table(columns), path)


async def write_history(settings: Settings, simulated: SimulatedHistory) -> None:
    """Write the simulated history through the same group-committed writer the service uses."""
    _fresh_sqlite(settings.database_url)
    await asyncio.to_thread(upgrade, settings.database_url)
    history = SqlHistory(settings.database_url, batch_max=CHUNK)
    await history.start()
    try:
        for i in range(0, len(simulated.decisions), CHUNK):
            await asyncio.gather(*(history.record_decision(d) for d in simulated.decisions[i : i + CHUNK]))
        for i in range(0, len(simulated.sends), CHUNK):
            await history.record_contacts(simulated.sends[i : i + CHUNK])
        for i in range(0, len(simulated.responses), CHUNK):
            await asyncio.gather(*(history.record_response(r) for r in simulated.responses[i : i + CHUNK]))
    finally:
        await history.close()


def _fresh_sqlite(url: str) -> None:
    # The demo history replaces an earlier demo's; a server database is only ever appended to.
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
