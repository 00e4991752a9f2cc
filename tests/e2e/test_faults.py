"""Redis down 10 s, then PostgreSQL down 10 s, under a steady 50 decisions/s: never a 500, every
acknowledged decision in PostgreSQL afterwards, none twice.

`nbo serve` (production settings) reaches Redis and PostgreSQL through TCP proxies the test cuts and
restores (tests/e2e/faults.py). While Redis is cut, decisions are degraded (the catalogue's service message,
no budgets); while PostgreSQL is cut, decisions are spooled locally and replayed once it is back. Every other
request carries a request id: while PostgreSQL is cut, those cannot be checked for an earlier attempt and get
503 with Retry-After (no safe answer), the others are acknowledged from the spool.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import REDIS_URL
from tests.e2e.conftest import CATALOGUE, PG_SERVER, Stack
from tests.e2e.faults import Ledger, ProxyProcess, catalogue_with_service_message, open_loop, post_decision

pytestmark = pytest.mark.services

RATE = 50.0
PHASES = (("normal", 3.0), ("redis_down", 10.0), ("recovering", 4.0), ("pg_down", 10.0), ("after", 4.0))


@pytest.fixture
def proxies() -> Iterator[tuple[ProxyProcess, ProxyProcess]]:
    """Cuttable TCP proxies in front of the shared Redis and PostgreSQL (which are never touched)."""
    started = [
        ProxyProcess(urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 0) for url in (REDIS_URL, PG_SERVER)
    ]
    yield started[0], started[1]
    for proxy in started:
        proxy.stop()


async def run_phases(redis: ProxyProcess, pg: ProxyProcess, marks: dict[str, float]) -> None:
    for name, seconds in PHASES:
        marks[name] = time.monotonic()
        if name == "redis_down":
            redis.cut()
        elif name == "recovering":
            redis.restore()
        elif name == "pg_down":
            pg.cut()
        elif name == "after":
            pg.restore()
        await asyncio.sleep(seconds)


async def test_redis_then_postgres_outage_under_load(stack: Stack, serve, proxies, tmp_path: Path):
    customers = stack.load_customers(tmp_path, 200)
    stack.catalogue_dir = catalogue_with_service_message(CATALOGUE, tmp_path / "catalogue")
    redis, pg = proxies
    redis_url = REDIS_URL.replace(f":{urlsplit(REDIS_URL).port}", f":{redis.port}", 1)
    database_url = stack.database_url.replace(f":{urlsplit(PG_SERVER).port}/", f":{pg.port}/", 1)
    server = serve(NBO_REDIS_URL=redis_url, NBO_DATABASE_URL=database_url, NBO_SPOOL_DIR=str(tmp_path / "spool"))
    ledger, marks = Ledger(), {}
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout, headers=server.auth) as session:

        async def send(n: int) -> None:
            body = {"customer_id": customers[n % len(customers)], "channel": "web", "max_offers": 2}
            if n % 2:
                body["request_id"] = f"r-{n}"
            ledger.answers.append(await post_decision(session, server.url, body))

        await asyncio.gather(open_loop(RATE, sum(s for _, s in PHASES), send), run_phases(redis, pg, marks))
        await wait_for_spool_empty(session, server.url)

    statuses = ledger.statuses()
    in_phase = phase_counts(ledger, marks)
    print(f"\nfault test: statuses {dict(statuses)}; degraded {ledger.degraded()}; per phase {in_phase}")
    assert statuses[500] == 0 and set(statuses) <= {200, 503}, statuses
    assert all(a.retry_after for a in ledger.answers if a.status == 503)
    assert in_phase["redis_down"]["degraded"] >= 0.8 * RATE * 8  # all but the first timeouts, about
    assert in_phase["redis_down"]["503"] == 0  # PostgreSQL was up: every degraded decision was recorded
    assert in_phase["pg_down"]["200"] >= 0.4 * RATE * 10  # the requests without request id: spooled
    assert in_phase["normal"]["200"] == in_phase["normal"]["sent"] and in_phase["after"]["200"] > 0
    await check_history(stack, ledger)


def phase_counts(ledger: Ledger, marks: dict[str, float]) -> dict[str, dict[str, int]]:
    names = list(marks)
    counts = {name: {"sent": 0, "200": 0, "503": 0, "degraded": 0} for name in names}
    for a in ledger.answers:
        # An answer belongs to the phase it arrived in (the last mark before it).
        name = max((n for n in names if marks[n] <= a.at), key=lambda n: marks[n], default=names[0])
        counts[name]["sent"] += 1
        counts[name][str(a.status)] = counts[name].get(str(a.status), 0) + 1
        counts[name]["degraded"] += bool(a.status == 200 and a.body.get("degraded"))
    return counts


async def wait_for_spool_empty(session: aiohttp.ClientSession, url: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        async with session.get(f"{url}/metrics") as response:
            text = await response.text()
        if "\nnbo_spool_records 0.0" in text:
            return
        await asyncio.sleep(0.25)
    pytest.fail("the spool was not replayed in time")


async def check_history(stack: Stack, ledger: Ledger) -> None:
    acknowledged = {body["decision_id"]: body for body in ledger.acknowledged()}
    assert len(acknowledged) == len(ledger.acknowledged())  # no decision id answered twice
    rows = await stack.fetch("SELECT decision_id, request_id FROM decisions")
    stored = {r["decision_id"] for r in rows}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged decisions are not in PostgreSQL"
    request_ids = [r["request_id"] for r in rows if r["request_id"]]
    assert len(request_ids) == len(set(request_ids))
    contacts = await stack.fetch("SELECT contact_id, offer_id FROM contacts")
    shown = {(d, o["offer_id"]) for d, body in acknowledged.items() for o in body["offers"]}
    assert shown <= {(r["contact_id"], r["offer_id"]) for r in contacts}
