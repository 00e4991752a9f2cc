"""Fault-injection helpers for the e2e suite: a TCP proxy a test can cut, an open-loop client, a ledger.

The proxy sits between `nbo serve` and the shared Redis or PostgreSQL: `cut()` closes its listener (new
connections are refused) and aborts every connection through it (the server sees resets), `restore()`
listens again on the same port. The shared servers are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


class CuttableProxy:
    """A loopback TCP proxy to `target` that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()

    async def start(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def restore(self) -> None:
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        self._transports |= pair  # type: ignore[arg-type]
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        self._transports -= pair  # type: ignore[arg-type]
        for w in (writer, up_writer):
            w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError, RuntimeError):
        writer.write_eof()


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (connection refused or reset)
    body: Any
    retry_after: str | None
    server: str
    at: float


@dataclass
class Ledger:
    """Every answer, by request."""

    answers: list[Answer] = field(default_factory=list)

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def acknowledged(self) -> list[dict[str, Any]]:
        return [a.body for a in self.answers if a.status == 200]

    def degraded(self) -> int:
        return sum(1 for a in self.answers if a.status == 200 and a.body.get("degraded"))


async def post_decision(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Answer:
    try:
        async with session.post(f"{url}/v1/decisions", json=body) as response:
            payload = await response.json(content_type=None)
            return Answer(response.status, payload, response.headers.get("Retry-After"), url, time.monotonic())
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        return Answer(0, repr(error), None, url, time.monotonic())


async def open_loop(rate: float, seconds: float, send: Any) -> None:
    """Call `send(n)` `rate` times a second for `seconds`, whether or not earlier calls have answered."""
    tasks, start, n = [], time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        tasks.append(asyncio.create_task(send(n)))
        n += 1
        await asyncio.sleep(max(0.0, n / rate - elapsed))
    await asyncio.gather(*tasks)


def catalogue_with_service_message(source: Path, target: Path) -> Path:
    """The stack catalogue plus a non-marketing offer (what degraded decisions fall back to)."""
    shutil.copytree(source, target)
    with (target / "catalogue.yaml").open("a") as f:  # `groups:` is its last key
        f.write("\n  - id: service\n    name: Service messages\n")
    with (target / "offers.yaml").open("a") as f:
        f.write(
            "\n  - id: app_update\n    name: Update your app\n    group: service\n    product: app\n"
            "    marketing: false\n    value: 0\n    prior: 0.01\n    channels:\n"
            '      web: {title: "Update the app"}\n      mobile: {title: "Update the app"}\n'
        )
    return target


class ProxyProcess:
    """A `CuttableProxy` in its own process (the test's event loop stays free for its client):
    SIGUSR1 cuts it, SIGUSR2 restores it."""

    def __init__(self, host: str, port: int) -> None:
        import subprocess
        import sys

        root = Path(__file__).resolve().parents[2]
        command = [sys.executable, "-m", "tests.e2e.faults", host, str(port)]
        self.proc = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def cut(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGUSR1)

    def restore(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGUSR2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _serve_proxy(host: str, port: int) -> None:
    import signal

    proxy = await CuttableProxy(host, port).start()
    print(proxy.port, flush=True)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: asyncio.ensure_future(proxy.cut()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: asyncio.ensure_future(proxy.restore()))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


if __name__ == "__main__":
    import sys

    asyncio.run(_serve_proxy(sys.argv[1], int(sys.argv[2])))
