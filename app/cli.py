"""The `nbo` command: demo data, serving, feature loading, catalogue validation, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from app.evaluation_cli import evaluation_commands
from app.keys_cli import keys_cli
from app.model_commands import admin_cli, models_cli
from app.settings import Settings
from app.simulate_cli import register as register_simulation
from app.trigger_cli import triggers_cli

cli = typer.Typer(help="Next-best-offer decision service.", no_args_is_help=True)
features_cli = typer.Typer(help="Customer features.", no_args_is_help=True)
catalogue_cli = typer.Typer(help="The offer catalogue.", no_args_is_help=True)
db_cli = typer.Typer(help="The contact history database.", no_args_is_help=True)
cli.add_typer(features_cli, name="features")
cli.add_typer(catalogue_cli, name="catalogue")
history_cli = typer.Typer(help="The contact history: write-behind drain, partitions, retention.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(history_cli, name="history")
cli.add_typer(models_cli, name="models")
cli.add_typer(admin_cli, name="admin")
cli.add_typer(keys_cli, name="keys")
cli.registered_commands += evaluation_commands.registered_commands  # nbo evaluate, nbo replay
cli.add_typer(triggers_cli, name="triggers")
register_simulation(cli)  # nbo simulate, nbo simulate-ope


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (NBO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (NBO_PORT)")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (NBO_WORKERS)")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    from app.logs import configure_logging

    settings = _serve_settings(host=host, port=port, workers=workers)
    _refuse_an_invalid_catalogue(settings.catalogue_dir)
    configure_logging(settings.log_level, settings.access_log)
    # LightGBM/OpenMP threads busy-wait between calls; a server process scores on one thread.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it found:
    # this one, so that a clean shutdown exits 0 (a supervisor then reads it as a normal stop).
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        "app.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_config=None,
        loop="uvloop",
        http="httptools",
        # SIGTERM: stop accepting, let in-flight requests finish (bounded), then the lifespan's shutdown
        # flushes the history's group commit and spool (DecisionService.close).
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
    )


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve_settings(**options: object) -> Settings:
    """The settings with the command line's options over the environment's; each reason they are invalid
    is printed on one line (not as a traceback) and the command exits with 2."""
    from pydantic import ValidationError

    try:
        return Settings(**{name: value for name, value in options.items() if value is not None})
    except ValidationError as error:
        for problem in error.errors(include_url=False):
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            typer.echo(f"invalid settings: {f'NBO_{where.upper()}: ' if where else ''}{message}", err=True)
        raise typer.Exit(code=2) from None


def _refuse_an_invalid_catalogue(directory: Path) -> None:
    """Check the catalogue before any worker starts, exactly as `nbo catalogue validate` does (each worker
    would otherwise die on it with a traceback inside a JSON log line). Its report goes to stderr: stdout
    carries only the service's JSON logs."""
    with contextlib.redirect_stdout(sys.stderr):
        try:
            catalogue_validate(directory)
        except typer.Exit:
            typer.echo(f"not serving: the catalogue in {directory} is invalid", err=True)
            raise


@cli.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many synthetic customers")] = 5000,
    days: Annotated[int, typer.Option(help="Days of past contact history to simulate")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed")] = 7,
    force: Annotated[bool, typer.Option(help="Rebuild even when the demo data exists")] = False,
) -> None:
    """Generate the demo bank: customers, a past contact history and a trained model."""
    from app.demo import build_demo, demo_ready, try_it

    settings = Settings()
    if not force and demo_ready(settings):
        typer.echo("demo data present (use --force to rebuild)")
    else:
        started = time.perf_counter()
        summary = asyncio.run(build_demo(settings, customers=customers, days=days, seed=seed))
        typer.echo(f"{summary} in {time.perf_counter() - started:.1f}s")
    typer.echo(try_it(settings))


@features_cli.command("load")
def features_load(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with a customer_id column", exists=True)],
    to: Annotated[str, typer.Option(help="'redis' (NBO_REDIS_URL) or 'check' (validate only)")] = "redis",
    batch_size: Annotated[int, typer.Option(help="Customers per pipeline")] = 5000,
) -> None:
    """Validate a features file against the schema and load it into the cache."""
    from app.feature_loading import load_file

    report = asyncio.run(load_file(Settings(), file, to=to, batch_size=batch_size))
    typer.echo(report)


@catalogue_cli.command("validate")
def catalogue_validate(
    directory: Annotated[Path | None, typer.Argument(help="Catalogue directory (default NBO_CATALOGUE_DIR)")] = None,
) -> None:
    """Check a catalogue and its events.yaml; every problem is listed with its file, entry, rule and position."""
    from policies.loader import catalogue_version, validate_catalogue

    directory = directory or Settings().catalogue_dir
    problems = validate_catalogue(directory)
    for problem in problems:
        typer.echo(str(problem), err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo(f"{directory}: valid (version {catalogue_version(directory)})")


@history_cli.command("drain")
def history_drain(batch: Annotated[int, typer.Option(help="Stream entries per SQL transaction")] = 500) -> None:
    """Move write-behind decisions from the Redis Stream into the SQL history (run one or more)."""
    from history.drain import main as drain

    settings = Settings()
    if settings.redis_url is None:
        raise typer.BadParameter("the drain needs NBO_REDIS_URL")
    asyncio.run(drain(settings.database_url, settings.redis_url, f"{settings.redis_prefix}:history", batch=batch))


@cli.command()
def train(
    since: Annotated[str | None, typer.Option(help="First contact time (ISO date or datetime, UTC)")] = None,
    until: Annotated[
        str | None, typer.Option(help="End of the contacts and what is known of responses (default now)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the registry (default NBO_MODEL_NAME)")] = None,
    dataset_out: Annotated[Path | None, typer.Option(help="Write the exact training rows to this Parquet file")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write report.json, report.html and plots to this directory")
    ] = None,
    promote_if_better: Annotated[
        bool, typer.Option(help="Promote when it beats the champion's holdout log loss")
    ] = False,
    url: Annotated[
        str | None, typer.Option(help="History database URL (default NBO_DATABASE_READ_URL, else NBO_DATABASE_URL)")
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Contacts read per chunk (bounds memory)")] = 50_000,
    max_trees: Annotated[int, typer.Option(help="Most boosting rounds (early stopping picks fewer)")] = 1000,
) -> None:
    """Train a propensity model from the contact history and register it as a new (non-champion) version."""
    from app.train import TrainOptions, run_training
    from models.registry import ModelRegistry
    from policies.loader import load_catalogue

    settings = Settings()
    options = TrainOptions(
        database_url=url or settings.history_read_url,
        catalogue=load_catalogue(settings.catalogue_dir),
        registry=ModelRegistry(settings.model_dir),
        name=name or settings.model_name,
        since=_epoch(since, "--since"),
        until=_epoch(until, "--until"),
        dataset_out=dataset_out,
        report=report,
        promote_if_better=promote_if_better,
        chunk_rows=chunk_rows,
        max_trees=max_trees,
    )
    try:
        outcome = asyncio.run(run_training(options))
    except ValueError as error:
        typer.echo(f"not trained: {error}", err=True)
        raise typer.Exit(code=1) from None
    for line in outcome.lines:
        typer.echo(line)
    typer.echo(
        f"{outcome.read:,} contacts read, {outcome.rows:,} training rows in {outcome.seconds_total:.1f}s "
        f"(reading {outcome.seconds_reading:.1f}s)"
    )
    typer.echo(outcome.version)


def _epoch(text: str | None, option: str) -> float | None:
    """An ISO date or datetime (UTC unless it names its offset) as epoch seconds."""
    from datetime import UTC, datetime

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{option}: not an ISO date or datetime: {text!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@history_cli.command("partitions")
def history_partitions(
    ahead: Annotated[int, typer.Option(min=0, help="Months after the current one to create now")] = 3,
) -> None:
    """Create the monthly history partitions (PostgreSQL) of this month and the next N; run it daily."""
    from app.history_maintenance import create_partitions

    try:
        lines = asyncio.run(create_partitions(Settings(), ahead))
    except RuntimeError as error:  # not partitioned: the database is not at migration 0005 yet
        typer.echo(f"not done: {error}", err=True)
        raise typer.Exit(code=1) from None
    for line in lines:
        typer.echo(line)


@history_cli.command("retain")
def history_retain(
    months: Annotated[int, typer.Option(min=1, help="Whole months kept before the current one")],
    archive: Annotated[Path | None, typer.Option(help="Write what is removed to Parquet files here first")] = None,
) -> None:
    """Remove the contact history older than N months (drops whole partitions on PostgreSQL); refuses to
    remove what the catalogue's contact policies and response windows still read."""
    from app.history_maintenance import retain_history
    from history.retention import RetentionRefused

    try:
        lines = asyncio.run(retain_history(Settings(), months, archive))
    except RetentionRefused as refused:
        typer.echo(f"refused: {refused}", err=True)
        raise typer.Exit(code=1) from None
    for line in lines:
        typer.echo(line)


@db_cli.command("upgrade")
def db_upgrade(
    url: Annotated[str | None, typer.Option(help="Database URL (default NBO_DATABASE_URL)")] = None,
) -> None:
    """Apply the contact-history migrations (alembic upgrade head)."""
    from app.settings import redact_url
    from history.migrate import upgrade

    target = url or Settings().database_url
    upgrade(target)
    typer.echo(f"migrated {redact_url(target)}")


# --- The overnight batch: prescoring and recording the sent list (app/prescoring.py, batch/) -----------------
outbound_cli = typer.Typer(help="Outbound lists.", no_args_is_help=True)
cli.add_typer(outbound_cli, name="outbound")


@cli.command()
def prescore(
    channel: Annotated[str, typer.Option(help="The (outbound) channel the list is for")],
    out: Annotated[Path, typer.Option(help="The list to write (Parquet)")],
    top: Annotated[int, typer.Option(help="Offers per customer")] = 1,
    as_of: Annotated[str | None, typer.Option(help="Decision time, ISO 8601 (default: now, or the run's)")] = None,
    features: Annotated[Path | None, typer.Option(help="Feature Parquet (NBO_FEATURES_FILE)", exists=True)] = None,
    features_from: Annotated[tuple[str, str] | None, typer.Option(
        help="Another source: 'postgres-table NAME' (at NBO_DATABASE_URL), 'redis URL' ('redis -': NBO_REDIS_URL)",
    )] = None,
    to_postgres: Annotated[str | None, typer.Option(help="Also COPY the list into this table")] = None,
    to_redis: Annotated[bool, typer.Option(help="Also store the online fallback in Redis")] = False,
    engine: Annotated[str, typer.Option(help="inprocess or dask")] = "inprocess",
    scheduler: Annotated[str | None, typer.Option(help="Dask scheduler address (default: a LocalCluster)")] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (NBO_BATCH_WORKERS)")] = None,
    run_id: Annotated[str | None, typer.Option(help="Resume this run (default: a new run id)")] = None,
    partition_size: Annotated[int | None, typer.Option(help="Customers per partition")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Decide the top offers of every customer, as POST /v1/decisions would at --as-of; resumable."""
    from app.prescoring import PrescoreOptions, run_prescore

    settings = Settings()
    source = features or settings.features_file
    table = redis = None
    if features_from is not None:
        kind, name = features_from
        if kind not in ("postgres-table", "redis"):
            raise typer.BadParameter(f"unknown source {kind!r} (postgres-table, redis)", param_hint="--features-from")
        table, redis = (name, None) if kind == "postgres-table" else (None, name)
    elif source is None or not source.exists():
        raise typer.BadParameter(f"no features file: {source}", param_hint="--features")
    options = PrescoreOptions(
        channel, top, source, out, as_of, run_id, engine, scheduler, workers or settings.batch_workers,
        partition_size or settings.batch_partition_size, to_postgres, to_redis, progress, table, redis,
    )  # fmt: skip
    result = run_prescore(settings, options)
    typer.echo(result.stats.text())
    typer.echo(f"run {result.run_dir.name}: {result.partitions} partitions ({result.resumed} resumed); "
               f"list {result.out}; summary {result.run_dir / 'summary.json'}")  # fmt: skip


@outbound_cli.command("record")
def outbound_record(
    file: Annotated[Path, typer.Argument(help="A prescored list (Parquet), as sent", exists=True)],
    channel: Annotated[str, typer.Option(help="The channel the list was sent in")],
    campaign: Annotated[str | None, typer.Option(help="Campaign name stored with each send")] = None,
) -> None:
    """Record the list's chosen offers as sent in the contact history (idempotent: a rerun adds nothing)."""
    from app.prescoring import record_outbound_list

    outcome = asyncio.run(record_outbound_list(Settings(), file, channel, campaign))
    typer.echo(f"received {outcome.received:,} sends; recorded {outcome.recorded:,} new; over a contact "
               f"policy: {dict(outcome.over_policies)}; over budget: {outcome.over_budget:,}")  # fmt: skip


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
