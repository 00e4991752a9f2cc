"""Hot reload for a running service: the catalogue, the model and the cold-start posteriors.

Why polling: the champion pointer is a file in NBO_MODEL_DIR, and every replica reads the same model
directory (a shared volume) whatever its other stores are. Reading one small file every
NBO_MODEL_POLL_SECONDS needs no Redis (the embedded mode has none) and no coordination: each worker of
each replica notices a promotion or a rollback on its own within one interval.

Every swap is built off the event loop (`asyncio.to_thread`) and applied by `DecisionService.reload` in
one assignment, so a decision in progress finishes with the scorer it started with and records that
scorer's version. A new model or catalogue that does not load is refused: logged, counted in
`nbo_reloads_total{outcome="refused"}`, and the last good one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.settings import Settings
from decisioning.ports import Scorer
from service.metrics import Metrics
from service.service import DecisionService

log = logging.getLogger("nbo.reload")
_NOTHING = object()  # no refused pointer (None is a pointer state: the file is missing)


@dataclass(frozen=True, slots=True)
class ReloadProblem:
    """Why a reload was refused: a catalogue problem (file, location) or the model's (file "model")."""

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.location, self.message) if part)


class ReloadRefused(Exception):
    def __init__(self, problems: Sequence[ReloadProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(map(str, self.problems)))


@dataclass(frozen=True, slots=True)
class Reloaded:
    catalogue_version: str
    model_version: str


class Reloader:
    """The one place that swaps what a running service serves (the admin endpoint and the watcher share
    it, and its lock keeps them from interleaving).

    `pointer` is the champion pointer file's content when the service's model was loaded: read it before
    loading, so that a promotion landing during start-up is seen by the first poll.
    """

    def __init__(self, service: DecisionService, settings: Settings, metrics: Metrics, pointer: bytes | None) -> None:
        self.service, self.settings, self.metrics = service, settings, metrics
        self._seen = pointer  # the pointer the serving model was built from
        self._refused: bytes | object | None = _NOTHING  # a pointer that failed: not retried until it changes
        self._lock = asyncio.Lock()

    async def reload(self) -> Reloaded:
        """Reload the catalogue directory and the model pointer together; raises `ReloadRefused` (and
        keeps serving what it served) when either does not load."""
        from app.bootstrap import load_catalogue_checked

        async with self._lock:
            loaded = await asyncio.to_thread(load_catalogue_checked, self.settings)
            if isinstance(loaded, list):
                self._count("catalogue", "refused")
                log.warning("catalogue reload refused", extra={"problems": len(loaded)})
                raise ReloadRefused([ReloadProblem(p.file, p.location, p.message) for p in loaded])
            catalogue, events = loaded
            pointer, scorer = await self._build_model()
            self.service.reload(catalogue=catalogue, scorer=scorer, events=events)
            self._seen, self._refused = pointer, _NOTHING
            self._count("catalogue", "applied")
            self._count("model", "applied")
            log.info("reloaded", extra={"catalogue_version": catalogue.version, "model_version": scorer.version})
            return Reloaded(catalogue.version, scorer.version)

    async def poll_model(self) -> bool:
        """Swap in the registry's model if its pointer changed since the last look; whether it swapped."""
        from app.bootstrap import model_pointer

        pointer = await asyncio.to_thread(model_pointer, self.settings)
        if pointer == self._seen or pointer == self._refused:
            return False
        async with self._lock:
            try:
                pointer, scorer = await self._build_model()
            except ReloadRefused:
                self._refused = pointer  # logged and counted once; tried again when the pointer changes
                return False
            self.service.reload(scorer=scorer)
            self._seen, self._refused = pointer, _NOTHING
            self._count("model", "applied")
            return True

    async def _build_model(self) -> tuple[bytes | None, Scorer]:
        """(the pointer read, the new serving scorer) with the current posteriors; ReloadRefused when the
        pointer or the model it names does not load."""
        from app.bootstrap import load_model, model_pointer
        from models.posterior import LearningScorer, OfferPosteriors

        pointer = await asyncio.to_thread(model_pointer, self.settings)
        current = self.service.scorer
        if pointer is None and getattr(current, "model", None) is not None:
            # A pointer file that vanished under a serving model is storage trouble (an unmounted shared
            # volume), not a decision to serve the priors: refuse it like a broken one.
            self._count("model", "refused")
            log.error("champion pointer file missing; the serving model stays")
            raise ReloadRefused(
                [ReloadProblem("model", self.settings.model_name, "the champion pointer file is missing")]
            )
        try:
            model = await asyncio.to_thread(load_model, self.settings)
        except Exception as error:
            self._count("model", "refused")
            log.error("model refused; the serving model stays", extra={"error": f"{type(error).__name__}: {error}"})
            raise ReloadRefused([ReloadProblem("model", self.settings.model_name, _describe(error))]) from error
        posteriors = current.posteriors if isinstance(current, LearningScorer) else OfferPosteriors()
        scorer = LearningScorer(model, posteriors)
        if scorer.version != current.version:
            log.info("model swapped", extra={"from_version": current.version, "model_version": scorer.version})
        return pointer, scorer

    async def refresh_posteriors(self) -> bool:
        """Re-read the per-offer response counts from the history into the serving scorer."""
        from app.learning import offer_counts
        from models.posterior import LearningScorer, OfferPosteriors

        counts = await offer_counts(self.service.history, self.settings.posterior_window_days)
        async with self._lock:
            current = self.service.scorer
            if counts is None or not isinstance(current, LearningScorer):
                return False
            self.service.reload(scorer=current.with_posteriors(OfferPosteriors(counts)))
            return True

    async def run(self) -> None:
        """The background task started in the lifespan: poll the pointer, refresh the posteriors."""
        poll, refresh = self.settings.model_poll_seconds, self.settings.posterior_refresh_seconds
        tasks = [_every(poll, self.poll_model, "model poll")] if poll > 0 else []
        tasks += [_every(refresh, self.refresh_posteriors, "posterior refresh")] if refresh > 0 else []
        if tasks:
            await asyncio.gather(*tasks)

    def _count(self, what: str, outcome: str) -> None:
        self.metrics.reloads.labels(what, outcome).inc()


async def _every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `job` every `seconds`; a failure is logged and the loop goes on (serving never depends on it)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except Exception as error:
            log.warning(f"{name} failed", extra={"error": type(error).__name__})


@contextlib.asynccontextmanager
async def watching(reloader: Reloader) -> AsyncIterator[None]:
    """Run the reloader's background task for the life of the app."""
    task = asyncio.create_task(reloader.run(), name="nbo-reloader")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _describe(error: Exception) -> str:
    """The model's problem in words, without a stack trace (file names and the error's own message)."""
    return f"the model does not load ({type(error).__name__}: {error})"
