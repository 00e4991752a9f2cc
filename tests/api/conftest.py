"""The service through HTTP on its embedded default: SQLite history in tmp_path, in-process cache."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.bootstrap import Adapters, open_adapters, service_from
from app.main import create_app
from app.settings import Settings
from service.metrics import Metrics
from service.service import DecisionService

ADULT = {
    "age": 35,
    "income_monthly": 4200,
    "balance_current": 3100,
    "balance_savings": 12000,
    "tenure_months": 60,
    "credit_score": 720,
    "card_spend_30d": 1500,
    "app_logins_30d": 20,
    "num_products": 2,
    "has_credit_card": False,
    "has_gold_card": False,
    "has_mortgage": False,
    "has_personal_loan": False,
    "has_overdraft": False,
    "has_savings_account": True,
    "has_investment_account": False,
    "has_pension_plan": False,
    "has_home_insurance": False,
    "has_travel_insurance": False,
    "has_life_insurance": False,
    "in_arrears": False,
    "in_collections": False,
    "marketing_consent": True,
    "do_not_contact": False,
    "is_resident": True,
    "segment": "mass",
    "region": "capital",
    "homeowner": True,
    "has_children": False,
    "digital_active": True,
}

Started = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        features_file=None,
        model_dir=tmp_path / "models",
        max_body_bytes=64 * 1024,
    )


Adapt = Callable[[Adapters], Adapters]


def factory_for(adapt: Adapt | None) -> Callable[[Settings, Metrics], Awaitable[DecisionService]]:
    """A service factory that builds the real adapters, then lets the test swap some of them."""

    async def factory(settings: Settings, metrics: Metrics) -> DecisionService:
        adapters = await open_adapters(settings)
        return service_from(adapt(adapters) if adapt else adapters, settings, metrics)

    return factory


@pytest.fixture
async def start(settings: Settings) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """Start the app (lifespan included); call again for a restart on the same database. `adapt` swaps
    adapters before the service is built; other keywords change the settings."""
    async with AsyncExitStack() as stack:

        async def _start(adapt: Adapt | None = None, **changes: object) -> Started:
            app = create_app(settings.model_copy(update=changes), service_factory=factory_for(adapt))
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://nbo.test")
            await stack.enter_async_context(client)
            await app.state.service.cache.put_features([("c-adult", ADULT)], at=time.time())
            return app, client

        yield _start


@pytest.fixture
async def client(start: Callable[..., Awaitable[Started]]) -> httpx.AsyncClient:
    _, client = await start()
    return client
