"""The optional webhook: each triggered delivery POSTed as JSON, signed, retried with backoff.

Signature (the receiver checks it with the shared secret, `NBO_TRIGGER_WEBHOOK_SECRET`):

    X-NBO-Timestamp: 1764583200
    X-NBO-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-NBO-Delivery:  tr-…   (the delivery id: the same on every retry, for the receiver to de-duplicate)

The timestamp inside the signed bytes lets a receiver refuse replays older than a few minutes
(`verify_signature(..., tolerance_seconds=300)`). Deliveries are queued and sent by background workers, so
a slow receiver never slows an event down. A connection error, a timeout, a 429 or a 5xx is retried after
`backoff x 2^attempt` seconds (capped at 30 s) up to `attempts` tries; another 4xx is final. The secret is
never logged nor put in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import httpx
import orjson

from decisioning.triggers import TriggerDelivery

log = logging.getLogger("nbo.webhook")
MAX_BACKOFF_SECONDS = 30.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The `X-NBO-Signature` value of a body sent at `timestamp`.

    >>> sign(b"k", "1", b"{}")
    'sha256=3dd49b2593d0f9a349e9e71c4bde3e2b862c2be4003fe9b4ba81332029310158'
    """
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float | None = None,
    tolerance_seconds: float = 300.0,
) -> bool:  # fmt: skip
    """For receivers: whether the signature is ours and the timestamp recent (constant-time compare)."""
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    fresh = abs(current - int(timestamp)) <= tolerance_seconds
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookOutlet:
    """Queues deliveries and POSTs them from `workers` background tasks (started on the first delivery)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 5.0,
        workers: int = 4,
        queue_size: int = 10_000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._secret = secret
        self.attempts, self.backoff = attempts, backoff_seconds
        self._timeout, self._transport, self._workers = timeout_seconds, transport, workers
        self._queue: asyncio.Queue[TriggerDelivery] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.observe: Callable[[str], None] = lambda outcome: None  # metrics: delivered, retried, failed, dropped

    def __repr__(self) -> str:  # never the secret
        return f"WebhookOutlet({self.url!r})"

    def submit(self, delivery: TriggerDelivery) -> bool:
        """Queue a delivery; False (counted as dropped) when the queue is full."""
        self._start()
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            self.observe("dropped")
            log.error("webhook queue full: delivery dropped", extra={"delivery_id": delivery.delivery_id})
            return False
        return True

    def _start(self) -> None:
        if self._tasks:
            return
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport)
        return self._client

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self.send(delivery)
            except Exception:  # a bug must not kill the worker: the next deliveries still go out
                log.exception("webhook worker error", extra={"delivery_id": delivery.delivery_id})
            finally:
                self._queue.task_done()

    async def send(self, delivery: TriggerDelivery) -> bool:
        """POST one delivery, retrying as the module docstring says; whether the receiver took it."""
        body = orjson.dumps(delivery.to_dict())
        for attempt in range(self.attempts):
            status = await self._post(delivery.delivery_id, body)
            if status is not None and status < 300:
                self.observe("delivered")
                return True
            if status is not None and status < 500 and status != 429:
                break  # the receiver refuses this delivery: retrying would not change its mind
            if attempt + 1 < self.attempts:
                self.observe("retried")
                await asyncio.sleep(min(self.backoff * 2**attempt, MAX_BACKOFF_SECONDS))
        self.observe("failed")
        log.error("webhook delivery failed", extra={"delivery_id": delivery.delivery_id, "url": self.url})
        return False

    async def _post(self, delivery_id: str, body: bytes) -> int | None:
        """The response status; None when no response came (connection refused, timeout)."""
        client = self._http()
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "x-nbo-delivery": delivery_id,
            "x-nbo-timestamp": timestamp,
            "x-nbo-signature": sign(self._secret, timestamp, body),
        }
        try:
            response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            log.warning("webhook attempt failed", extra={"delivery_id": delivery_id, "error": type(error).__name__})
            return None
        return response.status_code

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Let the queued deliveries go out (within `grace_seconds`), then stop the workers."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace_seconds)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        if self._client is not None:
            await self._client.aclose()
            self._client = None
