"""`nbo triggers read`: another process reads the embedded service's in-process queue through its
endpoint, and the Redis Stream directly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import uvicorn
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from app.settings import Settings
from delivery.outlets import RedisStreamDeliveries
from features.redis_client import redis_client
from tests.api.conftest import ADULT
from tests.api.test_triggers_http import REDIS_URL, TRANSFER, sms_catalogue  # noqa: F401 - the fixture
from tests.contract.test_trigger_outlets import delivery
from tests.contract.test_webhook import free_port

NBO = [sys.executable, "-m", "app.cli"]


@pytest.fixture
def served(tmp_path: Path, sms_catalogue: Path) -> Iterator[str]:  # noqa: F811
    """The embedded service on a free port (uvicorn in a thread), two customers in its features file."""
    features = tmp_path / "customers.parquet"
    pq.write_table(pa.Table.from_pylist([{"customer_id": c, **ADULT} for c in ("c-1", "c-2")]), features)
    settings = Settings(
        environment="test", catalogue_dir=sms_catalogue, features_file=features, model_dir=tmp_path / "models",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
    )  # fmt: skip
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the service did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def read(*args: str) -> subprocess.CompletedProcess[str]:
    """`nbo triggers read ARGS` in a process of its own, without the test's NBO_ settings (no Redis)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
    command = [*NBO, "triggers", "read", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)


def test_another_process_reads_the_embedded_queue_through_the_endpoint(served: str):
    for customer in ("c-1", "c-2"):
        answer = httpx.post(f"{served}/v1/events", json={"customer_id": customer, **TRANSFER}, timeout=30)
        assert answer.status_code == 200 and answer.json()["triggered"][0]["published"] == ["queue"]
    done = read("--url", served)
    assert done.returncode == 0, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(d["id"], d["customer_id"], d["trigger"]) for d in lines] == [
        ("1", "c-1", "competitor_sms"), ("2", "c-2", "competitor_sms"),
    ]  # fmt: skip
    assert "last id: 2" in done.stderr
    later = read("--url", served, "--after", "1")
    assert [orjson.loads(line)["customer_id"] for line in later.stdout.splitlines()] == ["c-2"]


def test_an_unreachable_service_is_one_line_and_exit_2():
    done = read("--url", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("error: cannot read the deliveries")


@pytest.mark.services
def test_with_redis_it_reads_the_stream_itself(monkeypatch: pytest.MonkeyPatch):
    prefix = f"nbotest-cli-{uuid.uuid4().hex[:8]}"
    sent = [delivery(f"c-{i}") for i in range(3)]

    async def publish() -> None:
        client = redis_client(REDIS_URL)
        stream = RedisStreamDeliveries(client, prefix=prefix)
        for d in sent:
            await stream.publish(d)
        await client.aclose()

    async def clean() -> None:
        client = redis_client(REDIS_URL)
        await client.delete(f"{prefix}:triggers")
        await client.aclose()

    asyncio.run(publish())
    monkeypatch.setenv("NBO_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("NBO_REDIS_PREFIX", prefix)
    try:
        result = CliRunner().invoke(cli, ["triggers", "read", "--limit", "2"])
    finally:
        asyncio.run(clean())
    assert result.exit_code == 0, result.output
    ids = [orjson.loads(line)["delivery_id"] for line in result.stdout.splitlines()]
    assert ids == [d.delivery_id for d in sent]
