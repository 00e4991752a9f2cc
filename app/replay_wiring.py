"""Wiring of `nbo evaluate --catalogue` and `nbo replay` to the settings, and their tables.

The candidate is a catalogue directory (default: the configured one) and a model version of the registry
(default: the champion), scored as the server scores (`LearningScorer`: the model where it knows the
offer, the cold-start posteriors elsewhere, with the counts the serving process would load now). The
current policy is the configured catalogue with the champion. The history is the configured one
(NBO_DATABASE_READ_URL when set, a replica: offline evaluation tolerates its lag; else NBO_DATABASE_URL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.settings import Settings, redact_url
from evaluation.ope_rows import ValueEstimates
from evaluation.redecide import Policy
from evaluation.replay import ReplayOptions, ReplayReport, replay

Refuse = Callable[[str], NoReturn]


async def candidate_evaluation(
    catalogue: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    options: ReplayOptions,
    refuse: Refuse,
) -> ReplayReport:
    """The candidate's off-policy value on the logged decisions (no current-policy replay)."""
    return await _run(catalogue, model, since, until, options, refuse, with_current=False)


async def candidate_replay(
    catalogue: Path | None,
    model: str | None,
    since: str | None,
    until: str | None,
    options: ReplayOptions,
    refuse: Refuse,
) -> ReplayReport:
    """The logged decisions re-decided by the current policy and by the candidate."""
    return await _run(catalogue, model, since, until, options, refuse, with_current=True)


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
    from sqlalchemy.exc import SQLAlchemyError

    from history.database import make_engine

    settings = _settings(refuse)
    start, end = _moment(since, "--since", refuse), _moment(until, "--until", refuse) or time.time()
    candidate_catalogue = _catalogue(catalogue or settings.catalogue_dir, refuse)
    current_catalogue = _catalogue(settings.catalogue_dir, refuse) if with_current else None
    candidate_model, current_model = _model(settings, model, refuse), _model(settings, None, refuse)
    engine = make_engine(settings.history_read_url)
    try:
        counts = await _posterior_counts(engine, settings)
        candidate = Policy(candidate_catalogue, _scorer(candidate_model, counts))
        current = None if current_catalogue is None else Policy(current_catalogue, _scorer(current_model, counts))
        with _progress() as bar:
            task = bar.add_task("re-deciding the logged decisions", total=None)
            return await replay(
                engine, candidate, since=start, until=end, current=current, options=options,
                progress=lambda n: bar.advance(task, n), on_read=lambda n: bar.update(task, total=n),
            )  # fmt: skip
    except SQLAlchemyError as error:
        refuse(f"history {redact_url(settings.history_read_url)} cannot be read: {str(error).splitlines()[0]}")
    finally:
        await engine.dispose()


def _settings(refuse: Refuse) -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        first = error.errors()[0]
        refuse(f"invalid settings: NBO_{str(first['loc'][0]).upper()}: {first['msg']}")


def _catalogue(directory: Path, refuse: Refuse) -> Any:
    from policies.loader import load_catalogue, validate_catalogue

    if not Path(directory).is_dir():
        refuse(f"--catalogue: {directory} is not a directory")
    problems = validate_catalogue(directory)
    if problems:
        refuse(f"catalogue {directory} is invalid: {problems[0]}")
    return load_catalogue(directory)


def _model(settings: Settings, version: str | None, refuse: Refuse) -> Any:
    """The registry's model `version`, or its champion (None when there is none: the priors score)."""
    from models.prior import PriorScorer
    from models.registry import ModelNotFound, ModelRegistry

    registry = ModelRegistry(settings.model_dir)
    try:
        if version is not None:
            return registry.load(settings.model_name, version)
        model = registry.scorer(settings.model_name)
    except ModelNotFound as error:
        refuse(f"--model: {error}")
    return None if isinstance(model, PriorScorer) else model


def _scorer(model: Any, counts: Any) -> Any:
    from models.posterior import LearningScorer, OfferPosteriors

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
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    )  # fmt: skip


# --- what the commands print ---------------------------------------------------------------------------


def evaluation_json(report: ReplayReport) -> dict[str, Any]:
    """`nbo evaluate --catalogue --json`: the acceptance estimates at the top (ips, snips, dr, ...), then
    both measures with the current policy's observed value, and the replay's counts."""
    assert report.acceptance is not None and report.value is not None, report.not_estimated
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


def replay_tables(report: ReplayReport) -> list[Table | str]:
    """Offers presented and drops per rule / policy (before and after), then the value tables."""
    offers = Table(title="offers presented (change: candidate - current, both replayed)")
    for column in ("offer", "logged", "current (replayed)", "candidate", "change"):
        offers.add_column(column, justify="left" if column == "offer" else "right")
    for s in report.presentations:
        offers.add_row(s.offer_id, f"{s.logged:,}", _count(s.current), f"{s.candidate:,}", f"{s.change:+,}")
    return [offers, _stages_table(report), *value_tables(report)]


def _stages_table(report: ReplayReport) -> Table | str:
    """The rules, contact policies and stages that drop more or fewer offers (the unchanged are counted)."""
    changed = sorted((s for s in report.stages if s.change != 0), key=lambda s: (-abs(s.change or 0), s.stage, s.name))
    unchanged = len(report.stages) - len(changed)
    if not changed:
        return f"offers dropped: no rule, contact policy or stage drops more or fewer ({unchanged} counted)"
    stages = Table(title=f"offers dropped, by stage, rule and contact policy ({unchanged} unchanged not shown)")
    for column in ("stage", "rule / policy", "current", "candidate", "change"):
        stages.add_column(column, justify="left" if column in ("stage", "rule / policy") else "right")
    for s in changed:
        change = "" if s.change is None else f"{s.change:+,}"
        stages.add_row(s.stage, s.name, _count(s.current), f"{s.candidate:,}", change)
    return stages


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
