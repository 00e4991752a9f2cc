"""`nbo train`: the learning loop's command, wiring the configured history, catalogue and registry.

Reads the settled contacts of the configured history (SQLite or PostgreSQL) in bounded chunks, trains and
calibrates a candidate (`models.retraining`), registers it as a new version that is *not* the champion,
optionally writes the exact training rows and the model report, and with `promote_if_better` promotes it
when it beats the champion on the same holdout. Progress goes to stderr (rich); stdout carries the
decision lines and, last, the registered version alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from decisioning.catalogue import Catalogue
from history.database import make_engine
from history.training_rows import count_training_contacts, stream_training_contacts
from models.learning import DatasetWriter, TrainingSetBuilder, encoder_for_catalogue
from models.registry import ModelNotFound, ModelRegistry
from models.report import deciles, importance, per_offer, reliability, write_report
from models.retraining import (
    Candidate,
    PromotionDecision,
    candidate_metadata,
    decide_promotion,
    train_candidate,
)
from models.training import TrainingConfig


@dataclass(frozen=True)
class TrainOptions:
    database_url: str
    catalogue: Catalogue
    registry: ModelRegistry
    name: str
    since: float | None = None
    until: float | None = None
    dataset_out: Path | None = None
    report: Path | None = None
    promote_if_better: bool = False
    chunk_rows: int = 50_000
    max_trees: int = 1000


@dataclass(frozen=True)
class TrainOutcome:
    version: str
    lines: tuple[str, ...]
    rows: int
    read: int
    seconds_reading: float
    seconds_total: float


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True),
    )  # fmt: skip


async def run_training(options: TrainOptions) -> TrainOutcome:
    """Build the training set, train, register, report and maybe promote (see the module doc)."""
    started = time.perf_counter()
    until = time.time() if options.until is None else options.until
    engine = make_engine(options.database_url)
    try:
        with _progress() as progress:
            builder = await _read(engine, options, until, progress)
            reading = time.perf_counter() - started
            data, channels = builder.finish()
            if len(data) == 0 or len(set(data.y.tolist())) < 2:
                raise ValueError(f"not enough settled contacts to train on: {builder.counts.to_dict()}")
            task = progress.add_task("training (global, early stopping; per-offer)", total=None)
            config = TrainingConfig(num_trees=options.max_trees)
            candidate = train_candidate(data, config)
            progress.update(task, total=1, completed=1)
            extra = {"data": _data_summary(options, until, builder)}
            meta = candidate_metadata(options.name, data, candidate, config, extra)
            stored = options.registry.register(candidate.model_text(), meta, first_is_champion=False)
            lines = [f"registered {options.name} {stored.version} (not the champion); "
                     f"holdout auc {candidate.metrics['holdout']['auc']:.4f}, "
                     f"log loss {candidate.metrics['holdout']['log_loss']:.4f}; "
                     f"better design: {candidate.metrics['comparison']['better']}"]  # fmt: skip
            promotion = None
            if options.promote_if_better:
                promotion = await _promotion(engine, options, until, data, candidate, progress)
                if promotion.promote:
                    options.registry.promote(options.name, stored.version)
                lines.append(promotion.reason)
            if options.report is not None:
                progress.add_task("report", total=None)
                _report(options, stored.version, data, channels, candidate, extra, promotion)
                lines.append(f"report: {options.report / 'report.html'}")
    finally:
        await engine.dispose()
    return TrainOutcome(
        stored.version, tuple(lines), len(data), builder.counts.read, reading, time.perf_counter() - started
    )


async def _read(engine: Any, options: TrainOptions, until: float, progress: Progress) -> TrainingSetBuilder:
    expected = await count_training_contacts(engine, options.since, until)
    writer = DatasetWriter(options.dataset_out, options.catalogue.features) if options.dataset_out else None
    builder = TrainingSetBuilder(
        options.catalogue, encoder_for_catalogue(options.catalogue), until, expected_rows=expected, writer=writer
    )
    task = progress.add_task("reading the contact history", total=expected)
    async for chunk in stream_training_contacts(engine, options.since, until, chunk_rows=options.chunk_rows):
        builder.add(chunk)
        progress.update(task, advance=len(chunk))
    return builder


async def _promotion(
    engine: Any, options: TrainOptions, until: float, data: Any, candidate: Candidate, progress: Progress
) -> PromotionDecision:
    """Score the same holdout with the champion: re-read [test_from, until) and encode it its way."""
    registry, name = options.registry, options.name
    test_y = data.y[candidate.split.test]
    try:
        champion = registry.load(name, compiled=False)
    except ModelNotFound:
        return decide_promotion(test_y, candidate.test_probabilities, None, None)
    if [s.name for s in champion.encoder.specs] != [s.name for s in options.catalogue.features]:
        why = f"champion {champion.version} reads another feature schema: not comparable on this holdout, not promoted"
        return PromotionDecision(False, why, float("nan"), None, len(test_y))
    builder = TrainingSetBuilder(options.catalogue, champion.encoder, until)
    total = await count_training_contacts(engine, candidate.split.test_from, until)
    task = progress.add_task("champion on the holdout", total=total)
    async for chunk in stream_training_contacts(
        engine, candidate.split.test_from, until, chunk_rows=options.chunk_rows
    ):
        builder.add(chunk)
        progress.update(task, advance=len(chunk))
    holdout, _ = builder.finish()
    if not np.array_equal(holdout.y, test_y):
        raise RuntimeError("the holdout read again differs from the training pass (history changed meanwhile?)")
    p = champion.predict(holdout.x)
    known = set(champion.metadata.offer_ids)
    for i, offer_id in enumerate(holdout.offer_ids.tolist()):
        if offer_id not in known:  # as the champion serves it: an offer new to it gets its catalogue prior
            offer = options.catalogue.offer(offer_id)
            p[i] = offer.prior if offer is not None else p[i]
    return decide_promotion(test_y, candidate.test_probabilities, p, champion.version)


def _data_summary(options: TrainOptions, until: float, builder: TrainingSetBuilder) -> dict[str, Any]:
    since = "the beginning" if options.since is None else _iso(options.since)
    return {
        "range": f"{since} .. {_iso(until)}",
        "since": options.since,
        "until": until,
        "feature_schema": options.catalogue.feature_schema,
        "catalogue_version": options.catalogue.version,
        "settling": builder.counts.to_dict(),
        "positive": "accepted inside the offer's response window; clicked neither labels nor settles",
    }


def _report(
    options: TrainOptions,
    version: str,
    data: Any,
    channels: np.ndarray,
    candidate: Candidate,
    extra: dict[str, Any],
    promotion: PromotionDecision | None,
) -> None:
    split = candidate.split
    y, p = data.y[split.test], candidate.test_probabilities
    content = {
        "model": options.name,
        "version": version,
        **{k: candidate.metrics[k] for k in ("holdout", "holdout_raw", "comparison", "early_stopping", "split")},
        **extra,
        "calibration": {
            "kind": candidate.calibration.kind,
            "bins": reliability(y, p),
            "raw_bins": reliability(y, candidate.test_raw),
        },
        "deciles": deciles(y, p),
        "offers": per_offer(data.offer_ids, data.y, split.fit | split.early_stop, split.test, p),
        "channels": _channel_rates(channels, data.y),
        "feature_importance": importance(candidate.booster, data.encoder.columns, candidate.best_iteration),
        "promotion": None if promotion is None else {
            "promote": promotion.promote, "reason": promotion.reason, "metric": "holdout log loss (calibrated)",
            "new_log_loss": promotion.new_log_loss, "champion_log_loss": promotion.champion_log_loss,
            "rows": promotion.rows,
        },
    }  # fmt: skip
    assert options.report is not None
    write_report(options.report, content, y, p, candidate.per_offer_probabilities)


def _channel_rates(channels: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"channel": c, "rows": int((channels == c).sum()), "acceptance_rate": float(y[channels == c].mean())}
        for c in sorted(set(channels.tolist()))
    ]


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
