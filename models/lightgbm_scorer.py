"""`LightGBMScorer`: the propensity model on the hot path.

The LightGBM text model is the source of truth. For speed it is compiled once to native code with lleaves
(single row x 100 offers: ~0.1 ms instead of ~0.4 ms) and the object file is cached beside the model,
keyed by the model file's hash, the lleaves version and the host CPU (the code is CPU-specific), so a
restart loads it in milliseconds. Without lleaves, or when compiling fails, LightGBM predicts.
Both predict on the calling thread: OpenMP worker threads would busy-wait inside a server.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np

from models.metadata import ModelMetadata

if TYPE_CHECKING:
    from decisioning.catalogue import Offer
    from decisioning.types import Context, CustomerFeatures

log = logging.getLogger(__name__)

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
ENGINES = ("auto", "lleaves", "lightgbm")


class LightGBMScorer:
    """Calibrated response probabilities from a LightGBM model; new offers get their catalogue prior.

    >>> scorer = LightGBMScorer.load(Path("var/models/nbo/20260101T000000Z-1a2b3c4d"))  # doctest: +SKIP
    >>> scorer.score(customer, context, offers)                                         # doctest: +SKIP
    array([0.021, 0.134, 0.05])
    """

    def __init__(
        self,
        model_file: Path,
        metadata: ModelMetadata,
        *,
        compiled: bool = True,
        engine: str | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        # `compiled`: use lleaves when it works (the service's switch); `engine` forces one ("lleaves"
        # fails loudly instead of falling back, for benchmarks and parity tests).
        engine = engine or ("auto" if compiled else "lightgbm")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
        self.metadata = metadata
        self.version = metadata.version
        self.encoder = metadata.encoder
        self.calibration = metadata.calibration
        self._known = frozenset(metadata.offer_ids)
        self._booster = lgb.Booster(model_file=str(model_file))
        required = engine == "lleaves"
        self._compiled = None if engine == "lightgbm" else _compile(model_file, cache_dir, required)
        self.engine = "lleaves" if self._compiled is not None else "lightgbm"
        self._entry = _entry_point(self._compiled)

    @classmethod
    def load(cls, directory: Path, **options: Any) -> LightGBMScorer:
        """Load `model.txt` and `metadata.json` from a model version's directory."""
        metadata = ModelMetadata.from_json((directory / METADATA_FILE).read_bytes())
        return cls(directory / MODEL_FILE, metadata, **options)

    def for_customer(self, customer_id: str) -> LightGBMScorer:
        """The scorer that scores this customer: this one (see `ChampionChallengerScorer`)."""
        return self

    @property
    def known_offer_ids(self) -> frozenset[str]:
        """The offers the model was trained on (any other is new: scored by its posterior instead)."""
        return self._known

    def predict_raw(self, rows: np.ndarray) -> np.ndarray:
        """The model's uncalibrated probabilities for encoded rows."""
        entry = self._entry
        if entry is not None and rows.dtype == np.float64 and rows.ndim == 2 and rows.flags.c_contiguous:
            function, width = entry
            n = rows.shape[0]
            if rows.shape[1] == width and 0 < n < 2**31 - 1:
                out = np.zeros(n)
                function(rows.ctypes.data, out.ctypes.data, 0, n)
                return out
        if self._compiled is not None:
            return self._compiled.predict(rows, n_jobs=1)
        return self._booster.predict(rows, num_threads=1)

    def predict_lightgbm(self, rows: np.ndarray) -> np.ndarray:
        """Uncalibrated probabilities from LightGBM itself (the reference the compiled model must match)."""
        return self._booster.predict(rows, num_threads=1)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for encoded rows."""
        return self.calibration.apply(self.predict_raw(rows))

    def score(self, customer: CustomerFeatures, context: Context, offers: Sequence[Offer]) -> np.ndarray:
        """Response probabilities, one per offer, in the order given."""
        if not offers:
            return np.empty(0)
        scores = self.predict(self.encoder.encode(customer, context, offers))
        for i, offer in enumerate(offers):
            if offer.id not in self._known:
                scores[i] = offer.prior  # the model never saw it: its score would be a guess
        return scores


    def score_many(
        self, customers: Sequence[CustomerFeatures], context: Context, offers: Sequence[Sequence[Offer]]
    ) -> list[np.ndarray]:
        """`score` for many customers in one model call (the overnight batch): the same numbers, since
        the model and the calibration work row by row."""
        rows = self.encoder.encode_pairs(customers, context, offers)
        flat = self.predict(rows) if len(rows) else np.empty(0)
        out, start = [], 0
        for group in offers:
            scores = flat[start : start + len(group)].copy()
            start += len(group)
            for i, offer in enumerate(group):
                if offer.id not in self._known:
                    scores[i] = offer.prior
            out.append(scores)
        return out


def _compile(model_file: Path, cache_dir: Path | None, required: bool) -> Any:
    """A compiled lleaves model, or None when lleaves is unavailable or fails (unless `required`)."""
    try:
        import lleaves

        model = lleaves.Model(model_file=str(model_file))
        cache = _cache_path(model_file, cache_dir)
        if cache.exists():
            model.compile(cache=str(cache))
        else:
            _compile_to_cache(model, cache)
        return model
    except Exception:
        if required:
            raise
        log.warning("lleaves compilation failed for %s; predicting with LightGBM", model_file, exc_info=True)
        return None


def _entry_point(compiled: Any) -> tuple[Any, int] | None:
    """The compiled model's native function, callable with raw addresses, and its row width.

    lleaves' own `predict` checks and converts its input and builds ctypes pointers on every call (~15 µs,
    as long as scoring the rows themselves for a decision's ~15 candidates); the service's rows are
    already C-contiguous float64 of the model's width, so they go straight to the same native function.
    None (use `predict`) when this lleaves does not expose it as expected: a single-output fp64 model.
    """
    if compiled is None:
        return None
    try:
        import ctypes

        if not compiled.use_fp64 or compiled.num_model_per_iteration() != 1:
            return None
        address = ctypes.cast(compiled._c_entry_func, ctypes.c_void_p).value
        kind = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32)
        return kind(address), int(compiled.num_feature())
    except Exception:  # a different lleaves: its own predict still works
        log.debug("lleaves entry point unavailable; using Model.predict", exc_info=True)
        return None


def _compile_to_cache(model: Any, cache: Path) -> None:
    """Compile, writing the object file under a temporary name first: concurrent replicas starting
    together must never load a half-written file."""
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(cache.parent, os.W_OK):
        model.compile()  # read-only model directory: compile in memory, without a cache
        return
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)  # lleaves would load a leftover file as if it were a valid cache
    try:
        model.compile(cache=str(tmp))
        tmp.replace(cache)
    finally:
        tmp.unlink(missing_ok=True)


def _cache_path(model_file: Path, cache_dir: Path | None) -> Path:
    import llvmlite.binding as llvm

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    tag = f"{importlib_metadata.version('lleaves')}-{llvm.get_host_cpu_name()}"
    return (cache_dir or model_file.parent) / f"lleaves-{digest}-{tag}.o"
