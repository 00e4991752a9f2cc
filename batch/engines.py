"""Where partitions run: in this machine's processes (the default) or on a Dask cluster.

Both engines run the one partition function, `batch.partition.prescore_partition`, and hand results back
as they finish; both keep only a few partitions in flight, so memory stays bounded whatever the input's
size. The driver (batch.run) writes each result to its own file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from multiprocessing import get_context
from typing import Any, Protocol

from batch.job import PrescoreJob
from batch.partition import Partition, PartitionResult, prescore_partition


class Engine(Protocol):
    """Runs the partition function over partitions; yields results in completion order."""

    def run(self, job: PrescoreJob, parts: Iterable[Partition]) -> Iterator[PartitionResult]: ...

    def close(self) -> None: ...


def _quiet_worker() -> None:
    # One OpenMP thread per worker process: the processes are the parallelism.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


class InProcessEngine:
    """A pool of local worker processes (`workers=1`: in this process, no pool; for tests and debugging).

    >>> engine = InProcessEngine(workers=2)                       # doctest: +SKIP
    >>> results = list(engine.run(job, partitions(path, 50_000, {})))  # doctest: +SKIP
    """

    def __init__(self, workers: int = 2, in_flight: int | None = None) -> None:
        self.workers = workers
        self.in_flight = in_flight or 2 * workers
        self._pool = None
        if workers > 1:
            # spawn: a fork of a driver holding threads (asyncio, Redis clients) could deadlock.
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_quiet_worker)

    def run(self, job: PrescoreJob, parts: Iterable[Partition]) -> Iterator[PartitionResult]:
        if self._pool is None:
            for part in parts:
                yield prescore_partition(job, part)
            return
        yield from _bounded(lambda part: self._pool.submit(prescore_partition, job, part), parts, self.in_flight)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _bounded(submit: Any, parts: Iterable[Partition], limit: int) -> Iterator[PartitionResult]:
    source = iter(parts)
    running: set[Future] = {submit(p) for p in islice(source, limit)}
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()
            running |= {submit(p) for p in islice(source, 1)}


class DaskEngine:
    """Partitions as tasks on a Dask distributed cluster: the scheduler at `address`, or a LocalCluster
    of `workers` single-threaded worker processes when no address is given.

    Workers must see the job's catalogue directory and model registry at the same paths (a shared
    volume or the same image), as they load them themselves.
    """

    def __init__(self, address: str | None = None, workers: int = 2, in_flight: int | None = None,
                 processes: bool = True) -> None:  # fmt: skip
        from distributed import Client, LocalCluster

        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=None
            )
            address = self._cluster.scheduler_address
        self.client = Client(address)
        self.in_flight = in_flight or 2 * max(1, len(self.client.scheduler_info()["workers"]))

    def run(self, job: PrescoreJob, parts: Iterable[Partition]) -> Iterator[PartitionResult]:
        from distributed import as_completed

        source = iter(parts)
        first = [self._submit(job, p) for p in islice(source, self.in_flight)]
        if not first:
            return
        running = as_completed(first)
        for future in running:
            result = future.result()
            future.release()
            yield result
            for p in islice(source, 1):
                running.add(self._submit(job, p))

    def _submit(self, job: PrescoreJob, part: Partition) -> Any:
        return self.client.submit(prescore_partition, job, part, pure=False, key=f"prescore-{job.run_id}-{part.index}")

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def engine_named(name: str, *, workers: int = 2, scheduler: str | None = None) -> Engine:
    """`inprocess` or `dask` (with `scheduler`, or a LocalCluster of `workers`)."""
    if name == "inprocess":
        return InProcessEngine(workers)
    if name == "dask":
        return DaskEngine(scheduler, workers)
    raise ValueError(f"unknown engine {name!r} (inprocess or dask)")
