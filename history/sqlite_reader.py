"""The SQLite side of the reads: each read in ONE hop to a reader thread, on plain `sqlite3` connections.

Through aiosqlite a read is several round trips to its connection's thread (check out, cursor, execute,
fetch, close, rollback on check-in), and each return needs the GIL back from an event loop that is busy
serving requests. Here a read's statements, and the decoding of their rows, run in one call on a small
pool of reader threads, each with its own connection in WAL mode: readers run beside the writer
(`history.sqlite_writer`) and see what it has committed.

The statements are `history.queries`' SQLAlchemy selects, compiled once each to SQLite SQL text (bound
parameters, not literals), and their parameters and columns go through the very processors SQLAlchemy's
engine would apply (its dialect's DATETIME, JSON and Boolean ones, and `EpochSeconds`): rows read back
here are equal to rows read through SQLAlchemy.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from history.database import SQLITE_PRAGMAS

T = TypeVar("T")


class ReadRow:
    """A row read here, shaped as `history.rows` reads a SQLAlchemy row: its values by column name in
    `_mapping`, and as attributes.

    >>> ReadRow({"offer_id": "card_gold"}).offer_id
    'card_gold'
    """

    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"ReadRow({self._mapping!r})"


class Prepared:
    """A select compiled once for `sqlite3`: its SQL text, its parameters in order with their bind
    processors (and the values it carries itself, such as `LIMIT 1`'s), its columns with their result
    processors."""

    __slots__ = ("_binds", "_carried", "_columns", "sql")

    def __init__(self, query: sa.Select[Any], dialect: Dialect) -> None:
        compiled = query.compile(dialect=dialect)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name} does not bind parameters by position")
        if compiled.post_compile_params:  # IN (...) and the like are rendered per call: not for a text compiled once
            raise ValueError(f"parameters rendered at execution time: {[p.key for p in compiled.post_compile_params]}")
        self.sql = compiled.string
        # In the order of the SQL's `?`s, by their compiled names (an anonymous one, such as LIMIT 1's, is named
        # when compiled); a parameter used twice is bound twice.
        binds = [(name, compiled.binds[name]) for name in compiled.positiontup]
        self._binds = [(name, b.type.dialect_impl(dialect).bind_processor(dialect)) for name, b in binds]
        self._carried = {name: b.effective_value for name, b in binds if not b.required}
        self._columns = [
            (c.name, c.type.dialect_impl(dialect).result_processor(dialect, None)) for c in query.selected_columns
        ]

    def parameters(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for `params` (by name); KeyError for a parameter not given."""
        values = self._carried | dict(params)
        return tuple(values[name] if bind is None else bind(values[name]) for name, bind in self._binds)

    def row(self, raw: Sequence[Any]) -> ReadRow:
        columns = self._columns
        return ReadRow({name: v if read is None else read(v) for (name, read), v in zip(columns, raw, strict=True)})


class Reads:
    """What a read's work gets on its reader thread: statements on that thread's connection."""

    __slots__ = ("_conn", "_prepare")

    def __init__(self, conn: sqlite3.Connection, prepare: Callable[[sa.Select[Any]], Prepared]) -> None:
        self._conn, self._prepare = conn, prepare

    def all(self, query: sa.Select[Any], params: Mapping[str, Any]) -> list[ReadRow]:
        prepared = self._prepare(query)
        values = prepared.parameters(params)
        with _as_sqlalchemy_raises(prepared.sql, values):
            # fetchall, also for one row: the statement runs to its end, so that its read snapshot ends now.
            raw = self._conn.execute(prepared.sql, values).fetchall()
        return [prepared.row(r) for r in raw]

    def each(self, query: sa.Select[Any], params: Mapping[str, Any]) -> Iterator[ReadRow]:
        """The rows one at a time: for a scan too large to hold as rows (`SqlHistory.summaries`)."""
        prepared = self._prepare(query)
        values = prepared.parameters(params)
        with _as_sqlalchemy_raises(prepared.sql, values):
            cursor = self._conn.execute(prepared.sql, values)
            while chunk := cursor.fetchmany(1_000):
                yield from map(prepared.row, chunk)

    def first(self, query: sa.Select[Any], params: Mapping[str, Any]) -> ReadRow | None:
        found = self.all(query, params)
        return found[0] if found else None


@contextmanager
def _as_sqlalchemy_raises(sql: str, values: tuple[Any, ...]) -> Iterator[None]:
    """sqlite3's errors as SQLAlchemy raises them (`DBAPIError` subclasses): the callers' handlers catch those."""
    try:
        yield
    except sqlite3.Error as error:
        raise sa.exc.DBAPIError.instance(sql, values, error, sqlite3.Error) from error


class SqliteReader:
    """Runs reads of one SQLite file on a few threads, each read in one call.

    >>> reader = SqliteReader("var/nbo.db", engine.dialect)                          # doctest: +SKIP
    >>> row = await reader.run(lambda reads: reads.first(query, {"contact_id": "d-1"}))  # doctest: +SKIP
    >>> await reader.close()                                                           # doctest: +SKIP

    `dialect` is the SQLAlchemy engine's: its processors (and JSON deserializer) decode the rows.
    """

    def __init__(self, path: str, dialect: Dialect, threads: int = 2) -> None:
        self._path = path
        self._dialect = dialect
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nbo-sqlite-reader")
        self._local = threading.local()  # each reader thread's connection
        self._opened: list[sqlite3.Connection] = []  # every thread's, to close
        self._lock = threading.Lock()
        self._prepared: dict[sa.Select[Any], Prepared] = {}
        self.reads = 0  # reads run (tests count them)

    async def run(self, work: Callable[[Reads], T]) -> T:
        """`work` on a reader thread: its statements and whatever it builds from their rows, in one hop."""
        self.reads += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, work)

    async def close(self) -> None:
        """Wait for the reads in flight, then close the connections."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()

    def _run(self, work: Callable[[Reads], T]) -> T:
        return work(Reads(self._connection(), self._prepare))

    def _prepare(self, query: sa.Select[Any]) -> Prepared:
        # Queries are few and cached by `history.queries`: keyed by the select object, this stays small.
        prepared = self._prepared.get(query)
        if prepared is None:
            prepared = self._prepared[query] = Prepared(query, self._dialect)
        return prepared

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no BEGIN, each statement reads the latest committed snapshot.
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            for pragma in (*SQLITE_PRAGMAS, "PRAGMA query_only=ON"):
                conn.execute(pragma)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn
