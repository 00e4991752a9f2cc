"""Group commit: many concurrent writers, one transaction, each caller told only after the commit.

Callers `submit` a job and await its future. One background task takes the first job from the queue,
gathers whatever else arrives within `batch_wait` seconds (up to `batch_max` jobs), writes them all in
one transaction, commits, then resolves every future with its result, or sets the exception on each.
A call therefore returns only once its rows are durable, yet a burst of 200 calls costs a handful of
commits instead of 200 (the fsync, or the round trip to PostgreSQL, is what a commit costs).

>>> writer = GroupCommitWriter(transact, batch_max=500, batch_wait=0.001)   # doctest: +SKIP
>>> writer.start(); result = await writer.submit("decision", record)        # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exc

from decisioning.ports import UnstorableRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Job:
    """One caller's write: what to write and the future its caller awaits."""

    kind: str
    payload: Any
    future: asyncio.Future[Any] = field(repr=False)


# Writes the jobs in one transaction and commits it; returns one result per job, in order.
Transact = Callable[[Sequence[Job]], Awaitable[list[Any]]]

# Errors caused by the data of a row (a violated constraint, a bad value), not by the database's state.
DATA_ERRORS = (exc.IntegrityError, exc.DataError, sqlite3.IntegrityError, sqlite3.DataError)
# Errors raised while a row's values are encoded for the database, inside the transaction: a value of a
# type the driver cannot bind (sqlite3.InterfaceError on Python 3.11), an integer beyond 64 bits
# (OverflowError from sqlite3, TypeError from orjson), a time that is not a number (TypeError, ValueError).
ENCODING_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, sqlite3.InterfaceError)
# PostgreSQL's SQLSTATE class 22, "data exception" (invalid JSON, a NUL character in text...): asyncpg's
# errors reach SQLAlchemy's generic DBAPIError, so the class is read from the error's code.
_PG_DATA_EXCEPTION = "22"

_STOP = object()


class HistoryWriteError(RuntimeError):
    """A write could not be committed; `__cause__` holds the database's error.

    Every caller of a failed batch gets its own instance, so that tracebacks do not pile up on one
    shared exception object.
    """


class HistoryRecordError(HistoryWriteError, UnstorableRecord):
    """This record cannot be stored as it is: a value the history cannot encode, or one the database
    refuses. Retrying it unchanged fails again. Only its own caller gets it, never the callers that share
    its batch; the message names what could not be stored, never a value.

    >>> await history.record_decision(record_with_2_to_the_70_in_its_context)   # doctest: +SKIP
    HistoryRecordError: decision not recorded: its context cannot be stored as JSON (Integer exceeds 64-bit range)
    """


class HistoryClosedError(HistoryWriteError):
    """A write was submitted to a history that is closed (or not started), or its writer stopped."""


class GroupCommitWriter:
    """Batches concurrent writes into shared transactions, each run by `transact`.

    `commits` counts committed transactions and `jobs_written` the jobs they carried: their ratio is the
    mean batch size.
    """

    def __init__(self, transact: Transact, *, batch_max: int, batch_wait: float):
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self._transact = transact
        self._batch_max = batch_max
        self._batch_wait = max(batch_wait, 0.0)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._inflight: list[Job] = []
        self.commits = 0
        self.jobs_written = 0

    def start(self) -> None:
        """Start the background writer task on the running event loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="history-writer")

    async def submit(self, kind: str, payload: Any) -> Any:
        """Queue one write and wait until it is committed; returns what the batch writer returned for it."""
        if self._task is None or self._task.done():
            raise HistoryClosedError("the contact history is not running")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(kind, payload, future))
        return await future

    async def close(self) -> None:
        """Write everything already queued, then stop. Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._queue.put_nowait(_STOP)
        await task

    async def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                self._inflight, stopping = await self._next_batch()
                if self._inflight:
                    await self._commit(self._inflight)
                self._inflight = []
        finally:
            # Only has work if the task was cancelled: nobody may wait forever on a lost write.
            self._fail_pending()

    async def _next_batch(self) -> tuple[list[Job], bool]:
        """The next jobs to write together, and whether the stop marker was reached."""
        item = await self._queue.get()
        batch: list[Job] = []
        deadline = asyncio.get_running_loop().time() + self._batch_wait
        while item is not _STOP:
            batch.append(item)
            if len(batch) >= self._batch_max:
                return batch, False
            item = await self._get_until(deadline)
            if item is None:
                return batch, False
        return batch, True

    async def _get_until(self, deadline: float) -> Any:
        """The next queued item, waiting at most until `deadline`; None when none came."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return None
        try:
            # Queue.get is cancellation safe: a timed-out get leaves the item in the queue.
            return await asyncio.wait_for(self._queue.get(), remaining)
        except TimeoutError:
            return None

    async def _commit(self, batch: list[Job]) -> None:
        try:
            results = await self._transaction(batch)
        except Exception as error:
            if not is_data_error(error):  # the database is gone, the disk is full...: every caller hears it
                log.warning("history batch of %d failed: %s", len(batch), error)
                _fail(batch, error)
            elif len(batch) == 1:
                _fail(batch, error, HistoryRecordError)
            else:  # one bad record must not fail the callers it happened to share a transaction with
                for job in batch:
                    await self._commit([job])
            return
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():  # a caller that gave up (cancelled) no longer listens
                job.future.set_result(result)

    async def _transaction(self, batch: list[Job]) -> list[Any]:
        results = await self._transact(batch)
        self.commits += 1
        self.jobs_written += len(batch)
        return results

    def _fail_pending(self) -> None:
        stopped = HistoryClosedError("the contact history writer stopped before writing this")
        pending = [item for item in _drain(self._queue) if item is not _STOP]
        _fail([*self._inflight, *pending], stopped)


def _drain(queue: asyncio.Queue[Any]) -> list[Any]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


def is_data_error(error: BaseException) -> bool:
    """Whether `error` comes from the data of a row (retrying the row unchanged fails again), not from the
    database's state: a violated constraint, a refused value, or a value that could not be encoded."""
    if isinstance(error, (*DATA_ERRORS, *ENCODING_ERRORS)):
        return True
    if isinstance(error, sqlite3.ProgrammingError):  # Python 3.12+: "Error binding parameter ..."
        return "binding" in str(error)
    if isinstance(error, exc.DBAPIError):
        return str(getattr(error.orig, "sqlstate", "") or "").startswith(_PG_DATA_EXCEPTION)
    return False


def _fail(batch: Sequence[Job], cause: BaseException, kind: type[HistoryWriteError] = HistoryWriteError) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(_error(kind, job, cause))


def _error(kind: type[HistoryWriteError], job: Job, cause: BaseException) -> HistoryWriteError:
    # A refused row's database message may quote its values (PostgreSQL's "Failing row contains ..."):
    # the caller's message names only the error's type; `__cause__` keeps the details for the logs.
    if kind is HistoryRecordError:
        error: HistoryWriteError = kind(f"{job.kind} not recorded: a value was refused ({type(cause).__name__})")
    else:
        error = kind(f"{job.kind} not recorded: {cause}")
    error.__cause__ = cause
    return error
