"""The `nbo` command: demo data, serving, feature loading, catalogue validation, migrations."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from app.settings import Settings

cli = typer.Typer(help="Next-best-offer decision service.", no_args_is_help=True)
features_cli = typer.Typer(help="Customer features.", no_args_is_help=True)
catalogue_cli = typer.Typer(help="The offer catalogue.", no_args_is_help=True)
db_cli = typer.Typer(help="The contact history database.", no_args_is_help=True)
cli.add_typer(features_cli, name="features")
cli.add_typer(catalogue_cli, name="catalogue")
history_cli = typer.Typer(help="The write-behind history stream.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(history_cli, name="history")


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
    uvicorn.run(
        "app.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        access_log=settings.access_log,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )


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
    from app.demo import build_demo, demo_ready

    settings = Settings()
    if not force and demo_ready(settings):
        typer.echo("demo data present (use --force to rebuild)")
        return
    started = time.perf_counter()
    summary = asyncio.run(build_demo(settings, customers=customers, days=days, seed=seed))
    typer.echo(f"{summary} in {time.perf_counter() - started:.1f}s")


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
        help="Another source: 'postgres-table NAME' (at NBO_DATABASE_URL)")] = None,
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
    table = None
    if features_from is not None:
        kind, table = features_from
        if kind != "postgres-table":  # redis: not built yet (docs/batch.md)
            raise typer.BadParameter(f"unknown source {kind!r} (postgres-table)", param_hint="--features-from")
    elif source is None or not source.exists():
        raise typer.BadParameter(f"no features file: {source}", param_hint="--features")
    options = PrescoreOptions(
        channel, top, source, out, as_of, run_id, engine, scheduler, workers or settings.batch_workers,
        partition_size or settings.batch_partition_size, to_postgres, to_redis, progress, table,
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
