"""The trigger webhook against a real HTTP server on a free port: signed, retried with backoff, final on
a refusal, and the secret never in a log line."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson
import pytest
from aiohttp import web

from decisioning.triggers import DeliveredOffer, TriggerDelivery
from delivery.webhook import WebhookOutlet, verify_signature

SECRET = b"a-test-signing-secret-of-32-bytes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Receiver:
    """A webhook receiver: answers the statuses in `script` in turn (then 200), keeps every request."""

    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append((headers, await request.read(), time.monotonic()))
        return web.Response(status=self.script.pop(0) if self.script else 200)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/nbo", found.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    found.url = f"http://127.0.0.1:{port}/hooks/nbo"
    yield found
    await runner.cleanup()


def delivery() -> TriggerDelivery:
    offer = DeliveredOffer("service_card_declined_help", 1, "Card declined", "See why.", 0.25, 20.0, 10.0)
    return TriggerDelivery(
        "tr-1", "card_declined", "c-000042", "sms", "d-1", "card_declined", 1.7e9, (offer,), "c", "m"
    )


def outlet(url: str, outcomes: list[str], **kw: object) -> WebhookOutlet:
    hook = WebhookOutlet(url, SECRET, backoff_seconds=0.05, timeout_seconds=2.0, **kw)  # type: ignore[arg-type]
    hook.observe = outcomes.append
    return hook


def expected_signature(headers: dict[str, str], body: bytes) -> str:
    """Computed here from the secret, as a receiver would, not with the outlet's own function."""
    signed = headers["x-nbo-timestamp"].encode() + b"." + body
    return "sha256=" + hmac.new(SECRET, signed, hashlib.sha256).hexdigest()


async def test_a_delivery_is_retried_with_growing_waits_until_the_receiver_takes_it(receiver, caplog):
    receiver.script = [503, 500, 429]
    outcomes: list[str] = []
    hook = outlet(receiver.url, outcomes)
    with caplog.at_level(logging.DEBUG):
        assert await hook.send(delivery())
    await hook.close()
    assert outcomes == ["retried", "retried", "retried", "delivered"] and len(receiver.requests) == 4
    waits = [b[2] - a[2] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert waits[0] >= 0.05 and waits[1] >= 0.1 and waits[2] >= 0.2  # backoff x 2^attempt
    for headers, body, _ in receiver.requests:
        assert orjson.loads(body) == delivery().to_dict() and headers["x-nbo-delivery"] == "tr-1"
        assert headers["x-nbo-signature"] == expected_signature(headers, body)
        assert verify_signature(SECRET, headers["x-nbo-timestamp"], body, headers["x-nbo-signature"])
    assert SECRET.decode() not in caplog.text and SECRET.decode() not in repr(hook)


async def test_a_refusal_is_final_and_a_tampered_body_does_not_verify(receiver):
    receiver.script = [400]
    outcomes: list[str] = []
    hook = outlet(receiver.url, outcomes)
    assert not await hook.send(delivery())
    await hook.close()
    assert outcomes == ["failed"] and len(receiver.requests) == 1
    headers, body, _ = receiver.requests[0]
    assert not verify_signature(SECRET, headers["x-nbo-timestamp"], body + b" ", headers["x-nbo-signature"])
    other = b"another-secret-entirely"
    assert not verify_signature(other, headers["x-nbo-timestamp"], body, headers["x-nbo-signature"])
    stale = str(int(headers["x-nbo-timestamp"]) - 3600)
    assert not verify_signature(SECRET, stale, body, expected_signature({"x-nbo-timestamp": stale}, body))


async def test_a_receiver_that_is_down_gets_every_attempt_then_the_delivery_fails(caplog):
    outcomes: list[str] = []
    hook = outlet(f"http://127.0.0.1:{free_port()}/hooks", outcomes, attempts=3)
    with caplog.at_level(logging.DEBUG):
        assert not await hook.send(delivery())
    await hook.close()
    assert outcomes == ["retried", "retried", "failed"]
    assert "webhook delivery failed" in caplog.text and SECRET.decode() not in caplog.text


async def test_submitted_deliveries_go_out_in_the_background_and_close_waits_for_them(receiver):
    receiver.script = [503]
    outcomes: list[str] = []
    hook = outlet(receiver.url, outcomes, workers=2)
    assert all(hook.submit(delivery()) for _ in range(5))
    await hook.close()
    assert outcomes.count("delivered") == 5 and len(receiver.requests) == 6


async def test_a_full_queue_drops_and_counts_instead_of_blocking_the_event(receiver):
    outcomes: list[str] = []
    hook = outlet(receiver.url, outcomes, queue_size=1, workers=1)
    accepted = [hook.submit(delivery()) for _ in range(3)]  # the worker has not run yet: one fits
    assert accepted == [True, False, False] and outcomes == ["dropped", "dropped"]
    await asyncio.wait_for(hook.close(), 5)
