"""A promotion reaches every worker of a running `nbo serve` without a restart: two workers on Redis and
PostgreSQL poll the champion pointer, `nbo models promote` rewrites it, and within a few poll intervals
every decision, in the answers and in the history, carries the new model version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from decisioning.catalogue import FeatureSpec, FeatureType
from models.registry import ModelRegistry
from models.synthetic import NOW, synthetic_offers, synthetic_training_set
from models.training import TrainingConfig, train_model
from tests.e2e.conftest import ServiceProcess, Stack, nbo_cli

pytestmark = pytest.mark.services

SPECS = (FeatureSpec("age", FeatureType.NUMBER, 40), FeatureSpec("income_monthly", FeatureType.NUMBER, 2500))
POLL = 0.5


def register_two(model_dir: Path) -> list[str]:
    data = synthetic_training_set(SPECS, synthetic_offers(4), rows=2_000)
    registry = ModelRegistry(model_dir)
    for i, trees in enumerate((2, 4)):
        trained = train_model(data, "nbo", TrainingConfig(num_trees=trees, min_data_in_leaf=20))
        registry.register(trained.model_text(), trained.metadata, now=NOW + 60 * i)
    return [m.version for m in registry.list_versions("nbo")]


async def versions_served(server: ServiceProcess, customers: list[str]) -> list[str]:
    """The model version of one decision per customer, all in flight at once (both workers take some)."""
    connector = aiohttp.TCPConnector(limit=len(customers))
    async with aiohttp.ClientSession(connector=connector, headers=server.auth) as session:

        async def one(customer_id: str) -> str:
            body = {"customer_id": customer_id, "channel": "web"}
            async with session.post(f"{server.url}/v1/decisions", json=body) as response:
                assert response.status == 200, await response.text()
                return (await response.json())["model_version"]

        return await asyncio.gather(*(one(c) for c in customers))


async def test_a_promotion_reaches_every_worker_within_the_poll_interval(
    stack: Stack, serve: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    first, second = register_two(stack.model_dir)
    customers = stack.load_customers(tmp_path, 60)
    env = {"NBO_MODEL_POLL_SECONDS": str(POLL), "NBO_MODEL_COMPILED": "false"}
    server = serve(workers=2, **env)
    assert set(await versions_served(server, customers)) == {first}
    cpu_before = server.cpu_seconds()

    promoted = nbo_cli("models", "promote", second, env=stack.environ())
    assert second in promoted
    promoted_at = time.time()
    await asyncio.sleep(POLL * 4)  # a poll, a model load off the event loop, on a busy shared machine
    for _ in range(3):
        assert set(await versions_served(server, customers)) == {second}
    cpu_used = {pid: s - cpu_before.get(pid, 0.0) for pid, s in server.cpu_seconds().items()}
    assert len(cpu_used) == 2 and min(cpu_used.values()) > 0.05, cpu_used  # both workers answered

    recorded = await stack.fetch(
        "SELECT DISTINCT d.model_version, c.model_version FROM decisions d JOIN contacts c "
        "ON c.contact_id = d.decision_id WHERE d.decided_at > to_timestamp($1)", promoted_at + POLL * 4
    )
    assert [tuple(r) for r in recorded] == [(second, second)]
