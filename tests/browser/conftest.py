"""The console in a real browser: the service (uvicorn in a thread, on a free port, the embedded default
with API keys) and headless Chromium driven by Playwright.

The browser is Debian's `chromium` at /usr/bin/chromium (`.ci/run` installs it when it is missing), launched
by its path: Playwright's own browser download (`playwright install`) is never used. One server and one
browser serve the whole module; each test gets a fresh browser context (no cookies).

Screenshots go to docs/console/ (NBO_SCREENSHOT_DIR overrides): the README shows them.
"""

from __future__ import annotations

import asyncio
import csv
import os
import shutil
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from app.bootstrap import open_adapters
from app.main import create_app
from app.settings import Settings
from history.keys import SCOPES, SqlKeyStore
from history.migrate import upgrade
from service.metrics import Metrics
from service.service import DecisionService

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "tests" / "fixtures" / "stack_catalogue"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("NBO_SCREENSHOT_DIR", ROOT / "docs" / "console"))
CUSTOMERS = 40
AGENT_SCOPES = {"decide", "respond", "history:read"}


@dataclass(frozen=True)
class Console:
    url: str
    agent_key: str
    marketer_key: str  # admin, and the agent's scopes
    catalogue_dir: Path
    database_url: str
    clock: Clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_customers(path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "age", "income_monthly", "segment"])
        writer.writerows([f"c-{i:06d}", 25 + i % 40, 2000 + 50 * i, "mass"] for i in range(1, CUSTOMERS + 1))


async def create_keys(url: str) -> tuple[str, str]:
    store = SqlKeyStore(url)
    await store.start()
    try:
        _, agent = await store.create("agent_anna", AGENT_SCOPES, None)
        _, marketer = await store.create("marketer_mo", set(SCOPES), None)
    finally:
        await store.close()
    return agent, marketer


def off_the_loop(url: str) -> tuple[str, str]:
    """Migrate and create the keys in a thread of their own: Playwright's sync API keeps an event loop
    running in the test's thread once the browser is up, and asyncio.run refuses to nest in it."""
    keys: list[tuple[str, str]] = []
    worker = threading.Thread(target=lambda: (upgrade(url), keys.append(asyncio.run(create_keys(url)))))
    worker.start()
    worker.join(timeout=60)
    if not keys:
        pytest.fail("could not prepare the console's database")
    return keys[0]


class ServerThread:
    """uvicorn serving `app` in a thread of its own until `stop`."""

    def __init__(self, app: object, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="console-server", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the console's server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class Clock:
    """The services' clock: real time plus `offset` seconds (the what-if test logs decisions in the past)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def factory_with(clock: Clock) -> Callable[[Settings, Metrics], Awaitable[DecisionService]]:
    """The real adapters, as `nbo serve` opens them, and a service on `clock`."""

    async def factory(settings: Settings, metrics: Metrics) -> DecisionService:
        a = await open_adapters(settings)
        return DecisionService(
            catalogue=a.catalogue, scorer=a.scorer, cache=a.cache, history=a.history, budgets=a.budgets,
            events=a.events, locks=a.locks, metrics=metrics, clock=clock, fallback=a.fallback,
        )  # fmt: skip

    return factory


@contextmanager
def served(directory: Path, catalogue: Path, customers: Path, clock: Clock) -> Iterator[Console]:
    """The service on a copy of `catalogue`, with two keys, until the block ends."""
    copy = directory / "catalogue"
    shutil.copytree(catalogue, copy)
    url = f"sqlite+aiosqlite:///{directory / 'history.db'}"
    agent, marketer = off_the_loop(url)
    settings = Settings(
        environment="test", auth="keys", database_url=url, catalogue_dir=copy, features_file=customers,
        model_dir=directory / "models", model_poll_seconds=0, posterior_refresh_seconds=0,
    )  # fmt: skip
    port = free_port()
    server = ServerThread(create_app(settings, service_factory=factory_with(clock)), port)
    server.start()
    try:
        yield Console(f"http://127.0.0.1:{port}", agent, marketer, copy, url, clock)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The service on the stack catalogue (its budgets and its decline cool-off)."""
    directory = tmp_path_factory.mktemp("console")
    write_customers(directory / "customers.csv")
    with served(directory, CATALOGUE, directory / "customers.csv", Clock()) as console:
        yield console


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    # Script errors and refused content (the pages' CSP allows only the service's own files) fail the test.
    errors: list[str] = []
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, errors


def log_in(page: Page, console: Console, key: str, path: str = "/console") -> None:
    """Through the login form, as a person would."""
    page.goto(f"{console.url}/console/login?next={path}")
    page.fill("input[name=key]", key)
    page.click("form[action='/console/login'] button[type=submit]")
    page.wait_for_url(f"**{path}*")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
