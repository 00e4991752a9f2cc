"""Wiring of `nbo evaluate --catalogue` and `nbo replay` to the settings, and their tables.

The candidate is a catalogue directory (default: the configured one) and a model version of the registry
(default: the champion), scored as the server scores (`LearningScorer`: the model where it knows the
offer, the cold-start posteriors elsewhere, with the counts the serving process would load now). The
current policy is the configured catalogue with the champion. The history is the configured one
(NBO_DATABASE_URL: SQLite embedded or PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.settings import Settings
from evaluation.ope_rows import ValueEstimates
from evaluation.redecide import Policy
from evaluation.replay import ReplayOptions, ReplayReport, replay

Refuse = Callable[[str], NoReturn]


async def candidate_evaluation(
    catalogue: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    clip: float | None,
    bootstrap: int,
    seed: int,
    refuse: Refuse,
) -> ReplayReport:
    """The candidate's off-policy value on the logged decisions (no current-policy replay)."""
    return await _run(catalogue, model, since, until, ReplayOptions(clip, bootstrap, seed), refuse, with_current=False)


async def candidate_replay(
    catalogue: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    clip: float | None,
    bootstrap: int,
    seed: int,
    refuse: Refuse,
) -> ReplayReport:
    """The logged decisions re-decided by the current policy and by the candidate."""
    return await _run(catalogue, model, since, until, ReplayOptions(clip, bootstrap, seed), refuse, with_current=True)


async def _run(
    catalogue: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    options: ReplayOptions,
    refuse: Refuse,
    *,
    with_current: bool,
) -> ReplayReport:
    from history.database import make_engine

    settings = Settings()
    start, end = _moment(since, "--since", refuse), _moment(until, "--until", refuse) or time.time()
    engine = make_engine(settings.database_url)
    try:
        counts = await _posterior_counts(engine, settings)
        candidate = Policy(
            _catalogue(catalogue or settings.catalogue_dir, refuse), _scorer(settings, model, counts, refuse)
        )
        current = None
        if with_current:
            current = Policy(_catalogue(settings.catalogue_dir, refuse), _scorer(settings, None, counts, refuse))
        with _progress() as bar:
            task = bar.add_task("re-deciding the logged decisions", total=None)
            return await replay(
                engine, candidate, since=start, until=end, current=current, options=options,
                progress=lambda n: bar.advance(task, n), on_read=lambda n: bar.update(task, total=n),
            )  # fmt: skip
    finally:
        await engine.dispose()


def _catalogue(directory: Path, refuse: Refuse) -> Any:
    from policies.loader import load_catalogue, validate_catalogue

    if not Path(directory).is_dir():
        refuse(f"--catalogue: {directory} is not a directory")
    problems = validate_catalogue(directory)
    if problems:
        refuse(f"catalogue {directory} is invalid: {problems[0]}")
    return load_catalogue(directory)


def _scorer(settings: Settings, version: str | None, counts: Any, refuse: Refuse) -> Any:
    from models.posterior import LearningScorer, OfferPosteriors
    from models.prior import PriorScorer
    from models.registry import ModelNotFound, ModelRegistry

    registry = ModelRegistry(settings.model_dir)
    try:
        if version is not None:
            model = registry.load(settings.model_name, version)
        else:
            model = registry.scorer(settings.model_name)
            model = None if isinstance(model, PriorScorer) else model
    except ModelNotFound as error:
        refuse(f"--model: {error}")
    return LearningScorer(model, OfferPosteriors(counts))


async def _posterior_counts(engine: Any, settings: Settings) -> Any:
    from history.outcomes import offer_response_counts

    return await offer_response_counts(engine, since=time.time() - settings.posterior_window_days * 86_400)


def _moment(text: str | None, option: str, refuse: Refuse) -> float | None:
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        refuse(f"{option}: not an ISO date or datetime: {text!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip


# --- what the commands print ---------------------------------------------------------------------------


def evaluation_json(report: ReplayReport) -> dict[str, Any]:
    """`nbo evaluate --catalogue --json`: the acceptance estimates at the top (ips, snips, dr, ...), then
    both measures with the current policy's observed value, and the replay's counts."""
    if report.acceptance is None or report.value is None:
        return {"error": report.not_estimated, "decisions": report.decisions, "skipped": dict(report.skipped)}
    return {
        **report.acceptance.candidate.to_json(),
        "acceptance": report.acceptance.to_json(),
        "value": report.value.to_json(),
        "decisions": report.decisions,
        "replayed": report.replayed,
        "skipped": dict(report.skipped),
        "rows_left_out": dict(report.rows_left_out),
    }


def value_tables(report: ReplayReport) -> list[Table]:
    """Acceptance and value per presented offer: current (observed) and candidate (IPS, SNIPS, DR)."""
    measures = (("accepted per presented offer", report.acceptance), ("value per presented offer", report.value))
    return [_value_table(title, measure) for title, measure in measures if measure is not None]


def _value_table(title: str, measure: ValueEstimates) -> Table:
    table = Table(title=title)
    for column in ("policy", "estimator", "estimate", "95% low", "95% high"):
        table.add_column(column, justify="left" if column in ("policy", "estimator") else "right")
    current = measure.current
    table.add_row("current (logged)", "observed mean", *_cells(current.estimate, current.low, current.high))
    for name, interval in (
        ("IPS", measure.candidate.ips),
        ("SNIPS", measure.candidate.snips),
        ("DR", measure.candidate.dr),
    ):
        cells = ("n/a", "", "") if interval is None else _cells(interval.estimate, interval.low, interval.high)
        table.add_row("candidate", name, *cells)
    return table


def _cells(*numbers: float) -> tuple[str, ...]:
    return tuple(f"{n:.4g}" for n in numbers)


def replay_tables(report: ReplayReport) -> list[Table]:
    """Offers presented and drops per rule / policy (before and after), then the value tables."""
    offers = Table(title="offers presented")
    for column in ("offer", "logged", "current (replayed)", "candidate", "change"):
        offers.add_column(column, justify="left" if column == "offer" else "right")
    for s in report.presentations:
        offers.add_row(s.offer_id, f"{s.logged:,}", _count(s.current), f"{s.candidate:,}", f"{s.change:+,}")
    stages = Table(title="offers dropped, by stage, rule and contact policy")
    for column in ("stage", "rule / policy", "current", "candidate", "change"):
        stages.add_column(column, justify="left" if column in ("stage", "rule / policy") else "right")
    for s in report.stages:
        change = "" if s.current is None else f"{s.candidate - s.current:+,}"
        stages.add_row(s.stage, s.name, _count(s.current), f"{s.candidate:,}", change)
    return [offers, stages, *value_tables(report)]


def _count(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


def summary_line(report: ReplayReport) -> str:
    """One line: decisions read, replayed, skipped, changed, reproduced, rows, and any reason for no estimate."""
    parts = [f"{report.decisions:,} logged decisions, {report.replayed:,} replayed"]
    if report.skipped:
        parts.append(f"skipped {dict(report.skipped)}")
    parts.append(f"the candidate changes {report.changed:,}")
    if report.reproduced is not None:
        parts.append(f"the current policy reproduces {report.reproduced:,} exactly")
    parts.append(f"{report.rows:,} settled rows estimated on")
    if report.rows_left_out:
        parts.append(f"left out {dict(report.rows_left_out)}")
    if report.not_estimated:
        parts.append(f"no estimate: {report.not_estimated}")
    return "; ".join(parts)
