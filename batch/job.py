"""What a prescoring run computes, as a small picklable value, and what a worker loads from it once.

A `PrescoreJob` travels to every worker (a local process or a Dask worker) with each partition: it names
the catalogue directory and the model registry rather than carrying them, because a compiled model does
not pickle. Each worker process loads them on first use and keeps them for the partitions that follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from decisioning.catalogue import Catalogue
from decisioning.ports import Scorer
from models.prior import PriorScorer
from models.registry import ModelNotFound, ModelRegistry
from policies.loader import load_catalogue

log = logging.getLogger("nbo.batch")


@dataclass(frozen=True, slots=True)
class PrescoreJob:
    """One prescoring run: which catalogue and model, for which channel and moment, how many offers.

    >>> job = PrescoreJob("r-1", Path("policies/demo"), Path("var/models"), "nbo", "email", 3, 1.79e9)
    >>> job.decision_id("c-000042")
    'b-r-1-c-000042'
    """

    run_id: str
    catalogue_dir: Path
    model_dir: Path
    model_name: str
    channel: str
    top: int
    as_of: float  # epoch seconds: the "now" of every decision in the run
    model_compiled: bool = True

    def decision_id(self, customer_id: str) -> str:
        # Seeds exploration (decisioning.engine._seed): the same run decides the same way when rerun.
        return f"b-{self.run_id}-{customer_id}"


@dataclass(frozen=True)
class Loaded:
    catalogue: Catalogue
    scorer: Scorer


_LOADED: dict[tuple[Path, Path, str, bool], Loaded] = {}


def loaded(job: PrescoreJob) -> Loaded:
    """The job's catalogue and scorer, loaded once per process (as the service loads them at start)."""
    key = (job.catalogue_dir, job.model_dir, job.model_name, job.model_compiled)
    found = _LOADED.get(key)
    if found is None:
        found = _LOADED[key] = Loaded(load_catalogue(job.catalogue_dir), load_scorer(job))
    return found


def load_scorer(job: PrescoreJob) -> Scorer:
    """The registry's champion (and challenger), or the catalogue priors: what `nbo serve` would load."""
    try:
        return ModelRegistry(job.model_dir).scorer(job.model_name, compiled=job.model_compiled)
    except ModelNotFound:
        log.warning("no trained model: prescoring with the catalogue priors")
        return PriorScorer()
