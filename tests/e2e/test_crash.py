"""A decision the caller received is a decision that is recorded, even when the server is SIGKILLed.

Clients stream decisions over several connections, each with its own `request_id`; the server (Redis +
PostgreSQL, group commit) is killed mid-stream and started again. Requests that got no answer are retried
with their request id: the retry either decides (the first attempt was never committed) or is refused with
the id of the decision the first attempt committed (its answer was lost with the server). Then PostgreSQL
must hold every acknowledged decision with exactly the offers the client was shown, and nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ServiceProcess, Stack

pytestmark = pytest.mark.services  # real Redis and PostgreSQL, never skipped

CLIENTS = 8
ACKNOWLEDGED_BEFORE_KILL = 300  # the kill comes once this many decisions were answered...
MAX_STREAM_SECONDS = 10.0  # ...or after this long, whichever is first
RETRIES_WHILE_BUSY = 10
DRAIN_SECONDS = 30.0  # write-behind: the drainer must empty the stream within this
ALREADY_DECIDED = re.compile(r"request already decided as (d-[0-9a-f]+)")


@dataclass
class Ledger:
    """What the clients sent and what they were told, by request id."""

    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    acknowledged: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> 200 body
    unanswered: set[str] = field(default_factory=set)  # no HTTP answer: the server died under them
    refused: dict[str, int] = field(default_factory=dict)  # any other status
    committed_before_crash: dict[str, str] = field(default_factory=dict)  # request id -> earlier decision id
    enough: asyncio.Event = field(default_factory=asyncio.Event)  # set once ACKNOWLEDGED_BEFORE_KILL answered

    def acknowledge(self, request_id: str, payload: dict[str, Any]) -> None:
        self.acknowledged[request_id] = payload
        if len(self.acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
            self.enough.set()


def decision_body(customer_id: str, request_id: str) -> dict[str, Any]:
    return {"customer_id": customer_id, "channel": "web", "max_offers": 2, "request_id": request_id}


async def post(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(f"{url}/v1/decisions", json=body) as response:
        return response.status, await response.json(content_type=None)


async def post_until_not_busy(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """Post, retrying a 503 as its message asks: the killed server may still hold the customer's lock in
    Redis until the lock expires (`RedisCustomerLock.ttl_ms`)."""
    for _ in range(RETRIES_WHILE_BUSY):
        status, payload = await post(session, url, body)
        if status != 503:
            break
        await asyncio.sleep(0.5)
    return status, payload


async def stream(
    session: aiohttp.ClientSession, url: str, client: int, customers: list[str], ledger: Ledger, stop: asyncio.Event
) -> None:
    """One client: decisions back to back on its connection until told to stop."""
    n = 0
    while not stop.is_set():
        request_id = f"r-{client}-{n}"
        body = ledger.sent[request_id] = decision_body(customers[(client * 7919 + n) % len(customers)], request_id)
        n += 1
        try:
            status, payload = await post(session, url, body)
        except (aiohttp.ClientError, TimeoutError):
            ledger.unanswered.add(request_id)
            continue
        if status == 200:
            ledger.acknowledge(request_id, payload)
        else:
            ledger.refused[request_id] = status


async def retry_unanswered(url: str, ledger: Ledger, auth: dict[str, str]) -> None:
    """Send every unanswered request again, with its request id, to the restarted server."""
    async with aiohttp.ClientSession(headers=auth) as session:
        for request_id in sorted(ledger.unanswered):
            status, payload = await post_until_not_busy(session, url, ledger.sent[request_id])
            if status == 200:
                ledger.acknowledged[request_id] = payload
                continue
            detail = " ".join(d.get("msg", "") for d in payload.get("detail", []))
            earlier = ALREADY_DECIDED.search(detail)
            assert status == 422 and earlier, (status, payload)
            ledger.committed_before_crash[request_id] = earlier.group(1)


async def stream_and_kill(server: ServiceProcess, customers: list[str]) -> Ledger:
    ledger, stop = Ledger(), asyncio.Event()
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=server.auth) as session:
        clients = [asyncio.create_task(stream(session, server.url, c, customers, ledger, stop)) for c in range(CLIENTS)]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ledger.enough.wait(), MAX_STREAM_SECONDS)
        server.kill()
        stop.set()  # no await between the kill and this: no request starts after the kill
        await asyncio.gather(*clients)
    return ledger


@pytest.mark.parametrize("history_mode", ["sync", "write_behind"])
async def test_no_acknowledged_decision_is_lost_or_duplicated_when_the_server_is_killed(
    stack: Stack,
    serve: Callable[..., ServiceProcess],
    drain: Callable[[], subprocess.Popen[bytes]],
    tmp_path: Path,
    history_mode: str,
) -> None:
    """In write-behind mode a decision is acknowledged once it is in the Redis stream; the drainer (not
    killed here: its own crashes are the drain contract tests' business) must bring every one to SQL."""
    customers = stack.load_customers(tmp_path, 200)
    if history_mode == "write_behind":
        drain()
    server = serve(workers=1, NBO_HISTORY_MODE=history_mode)
    ledger = await stream_and_kill(server, customers)
    acknowledged_before_crash = len(ledger.acknowledged)
    server.start()  # the same port, the same stores
    await retry_unanswered(server.url, ledger, server.auth)
    if history_mode == "write_behind":
        await wait_until_drained(stack)

    assert not ledger.refused, ledger.refused
    assert acknowledged_before_crash >= ACKNOWLEDGED_BEFORE_KILL, "the server answered too slowly to test anything"
    assert ledger.unanswered, "the kill found no request in flight"
    await check_history(stack, ledger)
    stale = await presentations_missing_from_summaries(stack, ledger)
    print(
        f"\ncrash test ({history_mode}): {len(ledger.sent)} decisions sent on {CLIENTS} connections, "
        f"{acknowledged_before_crash} acknowledged before the SIGKILL, {len(ledger.unanswered)} in flight "
        f"({len(ledger.committed_before_crash)} of them committed before the kill, their answer lost); "
        f"{len(ledger.acknowledged)} acknowledged in all, every one checked in PostgreSQL; "
        f"{stale} stored presentations missing from the Redis summaries"
    )
    # The summary is updated before the commit: a kill can leave it a presentation too many, never too few.
    assert stale == 0


async def wait_until_drained(stack: Stack) -> None:
    """Until the write-behind stream is empty (the drainer deletes what it stored); nothing dead-lettered."""
    stream = f"{stack.redis_prefix}:history"
    for _ in range(int(DRAIN_SECONDS / 0.1)):  # polls another process: no event to wait on
        if await stack.redis.xlen(stream) == 0:
            break
        await asyncio.sleep(0.1)
    assert await stack.redis.xlen(stream) == 0, f"the stream was not drained in {DRAIN_SECONDS:g}s"
    assert await stack.redis.xlen(f"{stream}:dead") == 0, "entries were dead-lettered"


async def check_history(stack: Stack, ledger: Ledger) -> None:
    decisions = await stack.fetch("SELECT decision_id, request_id FROM decisions")
    contacts = await stack.fetch("SELECT contact_id, offer_id FROM contacts")
    by_request = {r["request_id"]: r["decision_id"] for r in decisions}
    offers_of: dict[str, set[str]] = {}
    for c in contacts:
        offers_of.setdefault(c["contact_id"], set()).add(c["offer_id"])

    # Nothing twice: no decision id, no request id, no (contact, offer) row.
    assert len({r["decision_id"] for r in decisions}) == len(decisions)
    assert len(by_request) == len(decisions)
    assert len({(c["contact_id"], c["offer_id"]) for c in contacts}) == len(contacts)
    # Every acknowledged decision is there, with exactly the offers its client was shown.
    for request_id, body in ledger.acknowledged.items():
        assert by_request.get(request_id) == body["decision_id"], request_id
        assert offers_of.get(body["decision_id"], set()) == {o["offer_id"] for o in body["offers"]}
    # What a retry was refused for was committed before the kill, under that request id.
    for request_id, decision_id in ledger.committed_before_crash.items():
        assert by_request.get(request_id) == decision_id
    # And nothing else: every stored decision answers a request some client sent, once.
    assert set(by_request) == set(ledger.acknowledged) | set(ledger.committed_before_crash)
    assert set(offers_of) <= set(by_request.values()), "contact rows of no stored decision"


@pytest.mark.parametrize("history_mode", ["sync", "write_behind"])
async def test_concurrent_retries_of_one_request_acknowledge_only_what_is_recorded(
    stack: Stack,
    serve: Callable[..., ServiceProcess],
    drain: Callable[[], subprocess.Popen[bytes]],
    tmp_path: Path,
    history_mode: str,
) -> None:
    """A client whose first attempt timed out retries while that attempt is still being decided."""
    (customer,) = stack.load_customers(tmp_path, 1)
    server = serve(workers=1, NBO_HISTORY_MODE=history_mode)
    body = decision_body(customer, "r-retried")
    async with aiohttp.ClientSession(headers=server.auth) as session:
        answers = await asyncio.gather(*(post(session, server.url, body) for _ in range(4)))
    if history_mode == "write_behind":
        drain()
        await wait_until_drained(stack)

    acknowledged = {payload["decision_id"] for status, payload in answers if status == 200}
    stored = {r["decision_id"] for r in await stack.fetch("SELECT decision_id FROM decisions")}
    assert len(stored) == 1
    (decided,) = stored
    # The attempt that got the lock was decided and acknowledged; the others were refused (422 naming it, or
    # 503 busy). Four refusals would make "acknowledged <= stored" hold while nothing was acknowledged.
    assert acknowledged == {decided}, f"acknowledged {acknowledged}, stored {decided}; answers {answers}"
    for status, payload in answers:
        assert status in (200, 503) or (status == 422 and decided in str(payload)), (status, payload)


async def presentations_missing_from_summaries(stack: Stack, ledger: Ledger) -> int:
    """Stored presentations that the customers' Redis summaries lack (the summary is updated before the
    commit, so there must be none, wherever the kill lands)."""
    cache, missing = stack.cache(), 0
    for customer_id in {body["customer_id"] for body in ledger.sent.values()}:
        rows = await stack.fetch("SELECT contact_id, offer_id FROM contacts WHERE customer_id = $1", customer_id)
        summary = (await cache.load(customer_id)).summary
        known = {(e.decision_id, e.offer_id) for e in summary.events} if summary else set()
        missing += sum((r["contact_id"], r["offer_id"]) not in known for r in rows)  # no summary: all missing
    return missing
