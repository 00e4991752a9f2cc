"""The NBO policy's learning loop inside a simulated run: the service's own pieces, on the simulated clock.

Daily, the cold-start posteriors are refreshed from the history's offer counts (as the serving process
does every `posterior_refresh_seconds`); every `retrain_days`, `app.train.run_training` (what `nbo train`
runs) trains a candidate on the settled contacts of the run's own SQLite history up to the simulated now,
registers it, and the simulator promotes it and serves it (`DecisionService.reload`).

Exploration decays once: while the NBO knows only its priors it explores with the catalogue's epsilon
(0.1); from its first model on, with 0.03 (a new catalogue generation through `reload`, as a marketer's
catalogue change would be). Every decision logs the epsilon it was made with, in its selection probability.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time

from app.train import TrainOptions, run_training
from decisioning.ports import Scorer
from decisioning.types import DAY
from history.outcomes import offer_response_counts
from models.posterior import LearningScorer, OfferPosteriors
from models.registry import ModelRegistry
from simulation.stats import PolicyStats
from simulation.wiring import Wired

POSTERIOR_WINDOW_DAYS = 90
MAX_TREES = 400
EPSILON_WITH_A_MODEL = 0.03


class Learner:
    """Refreshes and retrains the NBO policy's scorer; `label` names the model now serving."""

    def __init__(self, wired: Wired, stats: PolicyStats) -> None:
        self.wired, self.stats = wired, stats
        self.registry = ModelRegistry(wired.settings.model_dir)
        self.model: Scorer | None = None
        self.label = "priors (day 0)"

    async def start_of_day(self, day: int, retrain_days: int) -> None:
        """Retrain when the schedule says so, then refresh the posteriors (clock at the day's start)."""
        if day > 0 and retrain_days > 0 and day % retrain_days == 0:
            await self.retrain(day)
        now = self.wired.service.clock()
        counts = await offer_response_counts(self.wired.history.engine, since=now - POSTERIOR_WINDOW_DAYS * DAY)
        self.wired.service.reload(scorer=LearningScorer(self.model, OfferPosteriors(counts)))

    async def retrain(self, day: int) -> None:
        name, started = self.wired.settings.model_name, time.perf_counter()
        options = TrainOptions(
            database_url=self.wired.settings.database_url, catalogue=self.wired.catalogue,
            registry=self.registry, name=name, until=self.wired.service.clock(), max_trees=MAX_TREES,
        )  # fmt: skip
        with contextlib.redirect_stderr(io.StringIO()):  # `nbo train`'s progress bars: not in a worker
            outcome = await run_training(options)
        self.registry.promote(name, outcome.version)
        if not self.stats.trainings:  # the first model: explore less from now on (see the module doc)
            settings = dataclasses.replace(self.wired.catalogue.settings, epsilon=EPSILON_WITH_A_MODEL)
            self.wired.catalogue = dataclasses.replace(self.wired.catalogue, settings=settings)
            self.wired.service.reload(catalogue=self.wired.catalogue)
        self.model = self.registry.load(name, outcome.version, compiled=False)
        meta = self.registry.metadata(name, outcome.version)
        self.label = f"model {len(self.stats.trainings) + 1} (day {day})"
        self.stats.trainings.append({
            "day": day, "model": self.label, "rows": outcome.rows,
            "holdout_auc": meta.metrics.get("holdout", {}).get("auc"),
            "seconds": round(time.perf_counter() - started, 2),
        })  # fmt: skip
