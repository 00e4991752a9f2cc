"""The service on its production stack, as real processes: `nbo serve` on Redis and PostgreSQL.

Each test gets a `stack`: the session's PostgreSQL database (created from `test`, migrated once with
`nbo db upgrade`, emptied for each test, dropped at the end), a Redis key prefix of its own (its keys are
deleted afterwards), the catalogue of tests/fixtures/stack_catalogue and an empty model registry (offers are
scored by their catalogue priors, so every decision is deterministic). `serve(workers=...)` starts
`nbo serve` on that stack as a subprocess in its own process group and waits until every worker is ready;
a test may SIGKILL it and start it again on the same stores. `drain()` starts `nbo history drain`, which
moves write-behind decisions (NBO_HISTORY_MODE=write_behind) from the Redis stream into PostgreSQL.

PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth; NBO_TEST_PG_SERVER overrides) and Redis
at 127.0.0.1:6379 (NBO_TEST_REDIS_URL overrides). When either is unreachable the tests fail, never skip.
"""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from coordination.budgets import RedisBudgetCounter
from features.redis_cache import RedisCustomerCache
from history.keys import SCOPES, SqlKeyStore
from policies.loader import load_catalogue
from tests.conftest import PG_SERVER, REDIS_URL, pg_async_url, pg_run

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "tests" / "fixtures" / "stack_catalogue"
SESSION = f"nbo-e2e-{uuid.uuid4().hex[:8]}"
HISTORY_TABLES = ("decisions", "contacts", "responses", "contact_keys", "response_keys", "api_keys")  # 0005, 0003


# --- PostgreSQL ---------------------------------------------------------------------------------------


async def pg_fetch(database: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on `database` of the test server; fail the test when the server is unreachable."""
    try:
        conn = await asyncpg.connect(f"{PG_SERVER}/{database}", timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {PG_SERVER}/{database} is unreachable: {error!r}")
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def stack_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, migrated by the deploy step `nbo db upgrade`."""
    name = f"nbo_e2e_{os.getpid()}"
    pg_run(pg_fetch("test", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    pg_run(pg_fetch("test", f"CREATE DATABASE {name}"))
    try:
        nbo_cli("db", "upgrade", "--url", pg_async_url(name), env=os.environ.copy())
        yield name
    finally:
        pg_run(pg_fetch("test", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# --- the stack: stores, environment, CLI --------------------------------------------------------------


def nbo_cli(*args: str, env: dict[str, str]) -> str:
    """Run the `nbo` command (as `python -m app.cli`); its stdout, or the test fails with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"nbo {' '.join(args)} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout


@dataclass
class Stack:
    """What a server and the CLI of one test run on; also reads back what they wrote."""

    database: str
    redis: Redis
    redis_prefix: str
    model_dir: Path
    catalogue_dir: Path = CATALOGUE
    feature_names: tuple[str, ...] = field(init=False)
    # `Authorization` for a key with every scope and channel: production refuses NBO_AUTH=none.
    auth: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.feature_names = tuple(f.name for f in load_catalogue(self.catalogue_dir).features)

    @property
    def database_url(self) -> str:
        return pg_async_url(self.database)

    def environ(self, **extra: str) -> dict[str, str]:
        """The service's environment: production mode, so that it refuses to start without both stores."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBO_")}
        return env | {
            "NBO_ENVIRONMENT": "production",
            "NBO_DATABASE_URL": self.database_url,
            "NBO_REDIS_URL": REDIS_URL,
            "NBO_REDIS_PREFIX": self.redis_prefix,
            "NBO_CATALOGUE_DIR": str(self.catalogue_dir),
            "NBO_MODEL_DIR": str(self.model_dir),
            **extra,
        }

    def load_customers(self, directory: Path, count: int) -> list[str]:
        """Write `count` adult customers to a CSV and load it with `nbo features load --to redis`."""
        ids = [f"c-{i:06d}" for i in range(1, count + 1)]
        path = directory / "customers.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["customer_id", "age", "income_monthly", "segment"])
            writer.writerows([cid, 25 + i % 50, 2000 + 10 * i, "mass"] for i, cid in enumerate(ids))
        report = nbo_cli("features", "load", str(path), "--to", "redis", env=self.environ())
        assert f'"loaded": {count}' in report, report
        return ids

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return await pg_fetch(self.database, sql, *args)

    def cache(self) -> RedisCustomerCache:
        """The service's Redis layout, to read or delete a customer's keys as the service writes them."""
        return RedisCustomerCache(self.redis, feature_names=self.feature_names, prefix=self.redis_prefix)

    def budgets(self) -> RedisBudgetCounter:
        return RedisBudgetCounter(self.redis, prefix=self.redis_prefix)


@pytest.fixture
async def stack(stack_database: str, redis_client: Redis, tmp_path: Path) -> AsyncIterator[Stack]:
    """An empty history and a private Redis prefix for this test; the prefix's keys are deleted after."""
    await pg_fetch(stack_database, f"TRUNCATE {', '.join(HISTORY_TABLES)}")
    prefix = f"{SESSION}:{uuid.uuid4().hex[:8]}"
    (tmp_path / "models").mkdir()
    stack = Stack(stack_database, redis_client, prefix, tmp_path / "models")
    stack.auth = await all_powerful_key(stack.database_url)
    yield stack
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await redis_client.delete(*keys)


async def all_powerful_key(database_url: str) -> dict[str, str]:
    store = SqlKeyStore(database_url)
    await store.start()
    try:
        _, key = await store.create("e2e", set(SCOPES), None)
    finally:
        await store.close()
    return {"Authorization": f"Bearer {key}"}


# --- the server process -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """`nbo serve` in its own process group, so that SIGKILL takes the supervisor and its workers at once."""

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.env, self.workers, self.log_path = env, workers, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.auth: dict[str, str] = {}  # the `Authorization` header clients send (the stack's key)

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        self._wait_ready(deadline)
        self._wait_workers_idle(deadline)
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self._fail("not ready in time")

    def _wait_workers_idle(self, deadline: float) -> None:
        """With several workers /readyz answers as soon as one is up: wait until all have started and
        gone idle (starting is CPU-bound: imports, catalogue, model), so that every worker takes load."""
        if self.workers == 1:
            return
        calm = 0
        last = self.cpu_seconds()
        while time.monotonic() < deadline and calm < 3:
            time.sleep(0.2)
            now = self.cpu_seconds()
            busy = len(now) != self.workers or any(now[p] - last.get(p, 0.0) > 0.03 for p in now)
            calm, last = (0 if busy else calm + 1), now
        if calm < 3:
            self._fail(f"{self.workers} workers did not settle in time")

    def worker_pids(self) -> list[int]:
        """The processes that serve: the workers uvicorn spawned, or the server itself with one worker."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        return [pid for pid in children(self.proc.pid) if b"spawn_main" in cmdline(pid)]

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU time of each worker: proof of which workers did the work."""
        return {pid: cpu_seconds(pid) for pid in self.worker_pids()}

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no flush, no goodbye."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            self._fail(f"exited with {self.proc.returncode}")

    def _fail(self, why: str) -> None:
        self.stop()
        pytest.fail(f"nbo serve {why}; its log ends with:\n{self.log()[-4000:]}")


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def serve(stack: Stack, tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start `nbo serve` on the test's stack; every server started is stopped at the end of the test."""
    started: list[ServiceProcess] = []

    def _serve(workers: int = 1, **env: str) -> ServiceProcess:
        log = tmp_path / f"serve-{len(started)}.log"
        server = ServiceProcess(stack.environ(**env), workers, log)
        server.auth = stack.auth
        started.append(server)
        return server.start()

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture
def drain(stack: Stack, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start `nbo history drain` on the test's stack; every drainer started is stopped (SIGTERM) at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def _drain() -> subprocess.Popen[bytes]:
        with (tmp_path / f"drain-{len(started)}.log").open("ab") as log:
            command = [sys.executable, "-m", "app.cli", "history", "drain"]
            proc = subprocess.Popen(
                command, cwd=ROOT, env=stack.environ(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append(proc)
        return proc

    yield _drain
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
