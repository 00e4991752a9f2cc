"""The simulated bank's DecisionService: the embedded mode's adapters, wired by `app.bootstrap`.

`open_adapters` opens what `nbo serve` opens without Redis (catalogue, in-process features, summaries,
budgets and locks, the SQLite history migrated at start); `service_from` builds the application layer on
them with the simulator's clock. Only the catalogue's arbitration settings and the scorer differ by policy
(see `policy_catalogue`), so every policy meets the same rules, contact policies and budgets.

Decision ids: the service draws them from `uuid.uuid4`, and the arbitration seeds its exploration with
the decision id. The simulator gives the service `seeded_decision_ids` instead (`decision_ids=`), so that
a run is reproducible for its seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from app.bootstrap import open_adapters, service_from, warm_summaries
from app.settings import Settings
from decisioning.catalogue import Catalogue, ControlMode, ExplorationKind
from decisioning.ports import Scorer
from history.sql import SqlHistory
from service.decisions import random_decision_id
from service.metrics import Metrics
from service.service import DecisionService
from simulation.bank import Bank

CATALOGUE_DIR = Path(__file__).parent / "catalogue"
POLICIES = ("nbo", "random", "push", "oracle")
BATCH_LIMIT = 500  # decisions the simulator has in flight at once (simulation/run.py)


class SimulatedClock:
    """The service's clock: the simulator moves it; every decision, response and send reads it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Wired:
    service: DecisionService
    settings: Settings
    catalogue: Catalogue
    history: SqlHistory


def policy_catalogue(catalogue: Catalogue, policy: str, *, budgets: bool = True) -> Catalogue:
    """The catalogue a policy decides with: the NBO explores as configured; push and oracle are greedy;
    random is the control group's uniform choice for everyone (its selection probability is logged).
    `budgets=False` lifts the volume budgets (the OPE check: see simulation/ope.py)."""
    settings = catalogue.settings
    if policy == "random":
        settings = dataclasses.replace(settings, control_share=1.0, control_mode=ControlMode.RANDOM)
    if policy != "nbo":
        settings = dataclasses.replace(settings, exploration=ExplorationKind.NONE, epsilon=0.0)
    offers = catalogue.offers if budgets else tuple(dataclasses.replace(o, budget=None) for o in catalogue.offers)
    return dataclasses.replace(catalogue, settings=settings, offers=offers)


def settings_for(workdir: Path) -> Settings:
    """Embedded mode in `workdir`: SQLite history, a model registry, no Redis, no spool."""
    return Settings(
        catalogue_dir=CATALOGUE_DIR,
        database_url=f"sqlite+aiosqlite:///{workdir / 'history.db'}",
        redis_url=None,
        features_file=None,
        model_dir=workdir / "models",
        spool_dir=None,
        sqlite_synchronous="normal",  # a scratch database: losing it in a power cut costs nothing
        model_compiled=False,
        max_in_flight=4 * BATCH_LIMIT,  # the simulator decides a batch of visits concurrently
    )


@contextlib.asynccontextmanager
async def wired_service(
    workdir: Path, bank: Bank, policy: str, scorer: Callable[[Catalogue], Scorer] | None, clock: SimulatedClock,
    *, budgets: bool = True, decision_ids: Callable[[], str] = random_decision_id,
) -> AsyncIterator[Wired]:
    """The service for one policy, its features loaded and every summary warm; closed on exit."""
    settings = settings_for(workdir)
    logging.getLogger("nbo.bootstrap").setLevel(logging.ERROR)  # "no features file": loaded below instead
    adapters = await open_adapters(settings)
    catalogue = policy_catalogue(adapters.catalogue, policy, budgets=budgets)
    adapters = dataclasses.replace(
        adapters, catalogue=catalogue, scorer=scorer(catalogue) if scorer else adapters.scorer
    )
    assert isinstance(adapters.history, SqlHistory)
    await adapters.cache.put_features(list(zip(bank.ids, bank.features, strict=True)), at=clock.now)
    await warm_summaries(adapters.cache, adapters.history, list(bank.ids))  # type: ignore[arg-type]
    service = service_from(adapters, settings, Metrics(), clock=clock, decision_ids=decision_ids)
    try:
        yield Wired(service, settings, catalogue, adapters.history)
    finally:
        await service.close()


def seeded_decision_ids(seed: int) -> Callable[[], str]:
    """Decision ids from a seeded generator, in the service's own form (see the module doc)."""
    rng = random.Random(seed)
    return lambda: f"d-{uuid.UUID(int=rng.getrandbits(128), version=4).hex}"
