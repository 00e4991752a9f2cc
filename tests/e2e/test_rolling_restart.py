"""A rolling restart under load: two `nbo serve` (one worker each, same Redis and PostgreSQL); SIGTERM one,
start it again, then the other. A stopping server finishes what it accepted and exits 0; a refused
connection is retried on the other server (same request id); no answer is a 5xx, and every acknowledged
decision is in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.faults import Ledger, open_loop, post_decision

pytestmark = pytest.mark.services

RATE = 50.0


async def restart(server, marks: list[str]) -> None:
    marks.append(f"stop {server.port}")
    await asyncio.to_thread(server.stop)  # SIGTERM, then waits for the exit
    assert server.proc.returncode == 0, f"exit code {server.proc.returncode}:\n{server.log()[-2000:]}"
    await asyncio.to_thread(server.start)
    marks.append(f"started {server.port}")


async def test_rolling_restart_loses_nothing(stack: Stack, serve, tmp_path: Path):
    customers = stack.load_customers(tmp_path, 100)
    servers = [serve(NBO_SPOOL_DIR=str(tmp_path / f"spool-{i}")) for i in range(2)]
    ledger, marks, retried = Ledger(), [], [0]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), headers=stack.auth) as session:

        async def send(n: int) -> None:
            body = {"customer_id": customers[n % 100], "channel": "web", "max_offers": 2, "request_id": f"r-{n}"}
            for attempt in range(20):
                answer = await post_decision(session, servers[(n + attempt) % 2].url, body)
                if answer.status != 0:
                    break
                retried[0] += 1  # connection refused or closed by a stopping server: try the other one
                await asyncio.sleep(0.05)
            ledger.answers.append(answer)

        async def rolling() -> None:
            await asyncio.sleep(2)
            for server in servers:
                await restart(server, marks)
                await asyncio.sleep(1)

        started = time.monotonic()
        done = asyncio.create_task(rolling())
        await open_loop(RATE, 4.0, send)
        while not done.done():  # keep the load on until both restarts are over
            await open_loop(RATE, 1.0, send)
        await done
    statuses = ledger.statuses()
    print(f"\nrolling restart: {dict(statuses)}, {retried[0]} retries, {time.monotonic() - started:.0f} s, {marks}")
    assert set(statuses) == {200}, statuses
    acknowledged = {b["decision_id"] for b in ledger.acknowledged()}
    stored = {r["decision_id"] for r in await stack.fetch("SELECT decision_id FROM decisions")}
    assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged decisions lost"
    request_ids = [r["request_id"] for r in await stack.fetch("SELECT request_id FROM decisions")]
    assert len(request_ids) == len(set(request_ids))
