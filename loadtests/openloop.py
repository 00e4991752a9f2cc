"""A fixed-rate open-loop HTTP/1.1 client on raw asyncio streams, and the latency maths of `make bench`.

Open loop: request i is due at `start + i / rate` whatever the server does, and its latency is counted
from that due time, not from when a connection was free to send it (no coordinated omission: a server
that stalls for 100 ms is charged 100 ms on every request that fell due meanwhile, as a caller sees).
Requests go over a fixed pool of keep-alive connections; a request due while every connection is busy
waits for one, and the wait is part of its latency. Raw streams, not httpx or aiohttp: the client must
cost much less CPU than the server it measures (httpx saturates a core by itself at ~200 req/s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

PERCENTILES = (50.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True, slots=True)
class Request:
    """One pre-encoded HTTP/1.1 request and what it is (`decision`, `response`, `event`)."""

    kind: str
    raw: bytes


@dataclass(slots=True)
class Outcome:
    """What one run saw: per-request latency (seconds from the due time), kind and HTTP status."""

    latencies: list[float] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    elapsed: float = 0.0


def encode(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request with a JSON body.

    >>> encode("POST", "/v1/x", b"{}", {}).split(b"\\r\\n")[0]
    b'POST /v1/x HTTP/1.1'
    """
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def schedule(rate: float, duration: float) -> np.ndarray:
    """Due times (seconds from the start) of a fixed-rate run: evenly spaced, `rate * duration` of them.

    >>> schedule(4, 1).tolist()
    [0.0, 0.25, 0.5, 0.75]
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    return np.arange(round(rate * duration)) / rate


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/p99.9 and max, in milliseconds (linear interpolation between samples).

    >>> latency_summary([0.001, 0.002, 0.003])["p50_ms"]
    2.0
    """
    if not latencies_s:
        return {**{percentile_key(p): float("nan") for p in PERCENTILES}, "max_ms": float("nan")}
    ms = np.asarray(latencies_s, dtype=float) * 1000.0
    values = np.percentile(ms, PERCENTILES)
    summary = {percentile_key(p): float(v) for p, v in zip(PERCENTILES, values, strict=True)}
    return {**summary, "max_ms": float(ms.max())}


def percentile_key(p: float) -> str:
    """`p99_ms`, `p99.9_ms`: the JSON key of a percentile."""
    return f"p{p:g}_ms"


async def run(host: str, port: int, requests: Sequence[Request], rate: float, duration: float,
              connections: int = 32) -> Outcome:  # fmt: skip
    """Send `requests` (cycled) at a fixed `rate` for `duration` seconds; wait for every answer."""
    due = schedule(rate, duration)
    queue: asyncio.Queue[tuple[float, Request] | None] = asyncio.Queue()
    outcome = Outcome()
    workers = [asyncio.create_task(_connection(host, port, queue, outcome)) for _ in range(connections)]
    start = time.perf_counter()
    for i, offset in enumerate(due):
        delay = start + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((start + offset, requests[i % len(requests)]))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    outcome.elapsed = time.perf_counter() - start
    return outcome


async def _connection(host: str, port: int, queue: asyncio.Queue, outcome: Outcome) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (item := await queue.get()) is not None:
            due, request = item
            writer.write(request.raw)
            status = await read_response(reader)
            outcome.latencies.append(time.perf_counter() - due)
            outcome.kinds.append(request.kind)
            outcome.statuses.append(status)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length framed, as uvicorn sends JSON); its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status
