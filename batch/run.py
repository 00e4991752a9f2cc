"""A prescoring run an operator can trust: a run id, a progress bar, resumable, a summary at the end.

Layout of a run directory (`<work dir>/<run id>/`):
- `part-00000.parquet`, ...: each partition's rows, written under a temporary name and renamed into place
  once complete, so a file that exists is a finished partition;
- `manifest.json`: the job (channel, top N, as-of, catalogue and model), the input, the partition size
  and, per finished partition, its row count and counts (rewritten atomically after each partition);
- `summary.json` and `summary.txt`: the merged counts, once every partition is done.
A rerun with the same run id checks that it is the same job, skips the finished partitions and runs the
rest. The final list (`--out`) is the parts concatenated in partition order, again written then renamed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from batch.engines import Engine
from batch.job import PrescoreJob, loaded
from batch.partition import PartitionResult
from batch.reading import count_rows, partitions
from batch.rows import OUTPUT_SCHEMA
from batch.stats import RunStats
from decisioning.summary import HistorySummary

MANIFEST = "manifest.json"


class RunMismatch(ValueError):
    """The run id names a run started with other parameters: resuming it would mix two runs."""


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    out: Path
    stats: RunStats
    partitions: int
    resumed: int  # partitions found finished and skipped


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / MANIFEST
    return orjson.loads(path.read_bytes()) if path.exists() else None


def prescore(
    job: PrescoreJob,
    features: Path,
    out: Path,
    *,
    run_dir: Path,
    engine: Engine,
    summaries: Mapping[str, HistorySummary],
    partition_size: int = 50_000,
    progress: bool = True,
) -> RunResult:
    """Prescore every customer of `features` with `engine`; resume the run in `run_dir` if started.

    >>> result = prescore(job, Path("customers.parquet"), Path("list.parquet"), run_dir=Path("var/batch/r-1"),
    ...                   engine=InProcessEngine(2), summaries={})   # doctest: +SKIP
    >>> result.stats.customers                                       # doctest: +SKIP
    1000000
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = _start_manifest(job, features, partition_size, run_dir)
    done = frozenset(int(i) for i, part in manifest["partitions"].items() if (run_dir / part["file"]).exists())
    total = count_rows(features)
    finished = sum(manifest["partitions"][str(i)]["customers"] for i in done)
    with _bar(total, finished, progress) as (bar, task):
        for result in engine.run(job, partitions(features, partition_size, summaries, skip=done)):
            _write_part(run_dir, manifest, result)
            bar.advance(task, result.stats.customers)
    stats = _merged(manifest)
    _finish(run_dir, manifest, stats, out)
    return RunResult(run_dir, out, stats, len(manifest["partitions"]), len(done))


def _identity(job: PrescoreJob, features: Path, partition_size: int) -> dict[str, Any]:
    """What must match for a rerun to resume a run: the job, the input and how it is cut."""
    catalogue, scorer = loaded(job).catalogue, loaded(job).scorer
    described = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()}
    return {
        "job": described,
        "catalogue_version": catalogue.version,
        "model_version": scorer.version,
        "input": {"path": str(features.resolve()), "bytes": features.stat().st_size},
        "partition_size": partition_size,
    }


def _start_manifest(job: PrescoreJob, features: Path, partition_size: int, run_dir: Path) -> dict[str, Any]:
    identity = _identity(job, features, partition_size)
    manifest = read_manifest(run_dir)
    if manifest is None:
        manifest = {"run_id": job.run_id, **identity, "partitions": {}, "finished": False}
        _write_json(run_dir / MANIFEST, manifest)
        return manifest
    differs = sorted(k for k, v in identity.items() if manifest.get(k) != v)
    if differs:
        raise RunMismatch(f"run '{job.run_id}' was started with other {', '.join(differs)}: use a new run id")
    return manifest


def _write_part(run_dir: Path, manifest: dict[str, Any], result: PartitionResult) -> None:
    name = f"part-{result.index:05d}.parquet"
    tmp = run_dir / f".{name}.{os.getpid()}.tmp"
    pq.write_table(result.table, tmp)
    tmp.replace(run_dir / name)  # atomic: a part file that exists is complete
    manifest["partitions"][str(result.index)] = {
        "file": name, "rows": result.table.num_rows, "customers": result.stats.customers,
        "stats": result.stats.to_dict(),
    }  # fmt: skip
    _write_json(run_dir / MANIFEST, manifest)


def _merged(manifest: dict[str, Any]) -> RunStats:
    stats = RunStats()
    for part in manifest["partitions"].values():
        stats.merge(RunStats.from_dict(part["stats"]))
    return stats


def part_files(run_dir: Path) -> list[Path]:
    """The finished part files of a run, in partition order."""
    manifest = read_manifest(run_dir) or {"partitions": {}}
    order = sorted(manifest["partitions"].items(), key=lambda kv: int(kv[0]))
    return [run_dir / part["file"] for _, part in order if (run_dir / part["file"]).exists()]


def _finish(run_dir: Path, manifest: dict[str, Any], stats: RunStats, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with pq.ParquetWriter(tmp, OUTPUT_SCHEMA) as writer:
        for path in part_files(run_dir):
            writer.write_table(pq.read_table(path, schema=OUTPUT_SCHEMA))
    tmp.replace(out)
    summary = {"run_id": manifest["run_id"], "as_of": manifest["job"]["as_of"], **stats.to_dict()}
    _write_json(run_dir / "summary.json", summary)
    (run_dir / "summary.txt").write_text(stats.text() + "\n")
    manifest["finished"] = True
    _write_json(run_dir / MANIFEST, manifest)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    tmp.replace(path)


class _RateColumn(ProgressColumn):
    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} customers/s" if speed else "", style="progress.data.speed")


class _bar:
    """A rich progress bar over customers (rate and ETA), or nothing when `enabled` is False."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        columns = (TextColumn("prescoring"), BarColumn(), MofNCompleteColumn(), _RateColumn(), TimeRemainingColumn())
        self.progress = Progress(*columns, disable=not enabled)
        self.task = self.progress.add_task("prescoring", total=total, completed=completed)

    def __enter__(self) -> tuple[Progress, Any]:
        self.progress.start()
        return self.progress, self.task

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
