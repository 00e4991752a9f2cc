"""`nbo evaluate` and `nbo replay`: offline evaluation of a candidate catalogue or model.

`nbo evaluate --log FILE` runs the estimators on a plain log file (evaluation/logs.py);
`nbo evaluate --catalogue DIR` evaluates a candidate on the logged decisions of the configured history;
`nbo replay --catalogue DIR` re-decides them and says what would change (evaluation/replay.py).
Tables and progress go to the terminal (progress on stderr); with `--json`, stdout is one JSON object.
Bad input is one line on stderr and exit code 2.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import orjson
import typer
from rich.console import Console
from rich.table import Table

from evaluation.estimators import Estimates, Interval

if TYPE_CHECKING:
    from evaluation.replay import ReplayOptions

# The replay's modules (the engine, LightGBM, SQLAlchemy) are imported by the commands that use them, not
# when `nbo` starts.
evaluation_commands = typer.Typer()

Clip = Annotated[float | None, typer.Option(help="Clip every importance weight at this value (reported)")]
Bootstrap = Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals")]
Seed = Annotated[int, typer.Option(help="Seed of the bootstrap (and of the reward model's folds)")]
Since = Annotated[str | None, typer.Option(help="First decision time (ISO date or datetime, UTC)")]
Until = Annotated[str | None, typer.Option(help="End of the decisions and of what is known of responses (now)")]
ModelVersion = Annotated[str | None, typer.Option("--model", help="Candidate model version (default: champion)")]


@evaluation_commands.command()
def evaluate(
    log: Annotated[Path | None, typer.Option(help="A CSV or Parquet log file (see docs/evaluation.md)")] = None,
    catalogue: Annotated[Path | None, typer.Option(help="A candidate catalogue directory")] = None,
    model: ModelVersion = None,
    since: Since = None,
    until: Until = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables")] = False,
    clip: Clip = None,
    bootstrap: Bootstrap = 1000,
    seed: Seed = 0,
    rows_out: Annotated[
        Path | None, typer.Option(help="With a candidate: write the rows estimated on as a log file (CSV/Parquet)")
    ] = None,
) -> None:
    """Off-policy estimates (IPS, SNIPS, DR) of a candidate's value, with 95% bootstrap intervals."""
    _check_options(clip, bootstrap)
    if (log is None) == (catalogue is None and model is None):
        _refuse("give either --log FILE or a candidate (--catalogue DIR and/or --model V)")
    if log is not None:
        _evaluate_log(log, json, clip, bootstrap, seed)
    else:
        from evaluation.replay import ReplayOptions

        _evaluate_candidate(
            catalogue, model, since, until, json, ReplayOptions(clip, bootstrap, seed, stages=False, rows_out=rows_out)
        )


def _evaluate_log(path: Path, json: bool, clip: float | None, bootstrap: int, seed: int) -> None:
    from evaluation.logs import LogFileError, evaluate_log

    try:
        result = evaluate_log(path, clip=clip, bootstrap=bootstrap, seed=seed)
    except LogFileError as error:
        _refuse(str(error))
    if json:
        _print_json(result.to_json())
        return
    console = Console()
    console.print(estimates_table(f"{path.name}: value per row", result.estimates))
    console.print(diagnostics_line(result.estimates) + f"; DR reward model: {result.reward_model}")


def estimates_table(title: str, estimates: Estimates) -> Table:
    """The three estimates with their intervals, as a rich table."""
    table = Table(title=title)
    for column in ("estimator", "estimate", "95% low", "95% high"):
        table.add_column(column, justify="left" if column == "estimator" else "right")
    for name, interval in (("IPS", estimates.ips), ("SNIPS", estimates.snips), ("DR", estimates.dr)):
        table.add_row(name, *_cells(interval))
    return table


def _cells(interval: Interval | None) -> tuple[str, str, str]:
    if interval is None:
        return ("n/a (no reward model)", "", "")
    return (f"{interval.estimate:.6g}", f"{interval.low:.6g}", f"{interval.high:.6g}")


def diagnostics_line(estimates: Estimates) -> str:
    clipping = (
        f"clipped at {estimates.clipped_at:g} ({estimates.clipped_rows:,} rows)"
        if estimates.clipped_at is not None
        else "no clipping"
    )
    return (
        f"{estimates.rows:,} rows; effective sample size {estimates.effective_sample_size:,.1f}; "
        f"largest weight {estimates.max_weight:.4g}; {clipping}"
    )


def _evaluate_candidate(
    catalogue: Path | None, model: str | None, since: str | None, until: str | None, json: bool, options: ReplayOptions
) -> None:
    from app.replay_wiring import candidate_evaluation, evaluation_json, summary_line, value_tables

    report = asyncio.run(candidate_evaluation(catalogue, model, since, until, options, _refuse))
    if report.not_estimated is not None:
        # Not bad input, nothing to estimate (e.g. every window still open): said on one line, exit code 1.
        typer.echo(f"not evaluated: {summary_line(report)}", err=True)
        raise typer.Exit(code=1)
    if json:
        _print_json(evaluation_json(report))
        return
    console = Console()
    for table in value_tables(report):
        console.print(table)
    console.print(summary_line(report))


@evaluation_commands.command()
def replay(
    catalogue: Annotated[Path | None, typer.Option(help="A candidate catalogue directory")] = None,
    model: ModelVersion = None,
    since: Since = None,
    until: Until = None,
    json: Annotated[Path | None, typer.Option("--json", help="Also write the whole report to this JSON file")] = None,
    clip: Clip = None,
    bootstrap: Bootstrap = 1000,
    seed: Seed = 0,
) -> None:
    """Re-decide the logged decisions with a candidate: offers, rules and policies, value (before/after)."""
    from app.replay_wiring import candidate_replay, replay_tables, summary_line
    from evaluation.replay import ReplayOptions

    _check_options(clip, bootstrap)
    if catalogue is None and model is None:
        _refuse("give a candidate: --catalogue DIR and/or --model V")
    report = asyncio.run(
        candidate_replay(catalogue, model, since, until, ReplayOptions(clip, bootstrap, seed), _refuse)
    )
    console = Console()
    for table in replay_tables(report):
        console.print(table)
    console.print(summary_line(report))
    if json is not None:
        json.write_bytes(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2))
        console.print(f"report written to {json}")


def _check_options(clip: float | None, bootstrap: int) -> None:
    if clip is not None and not clip > 0:
        _refuse(f"--clip: must be a positive weight, got {clip:g}")
    if bootstrap < 1:
        _refuse(f"--bootstrap: must be at least 1, got {bootstrap}")


def _print_json(document: object) -> None:
    typer.echo(orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY).decode())


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)
