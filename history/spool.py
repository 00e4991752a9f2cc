"""A bounded local append-only spool: the history writes PostgreSQL could not take, kept durably on disk
until they are replayed into it (`history.spooled.SpooledHistory`).

File format (`spool-<slot>.log` in the spool directory): a sequence of records, each

    [length: 4 bytes, big endian][crc32 of the payload: 4 bytes, big endian][payload: `length` bytes]

and the payload is orjson: `{"kind": "decision" | "contacts" | "response", "at": epoch seconds spooled,
"data": the record as `history.codec` encodes it}`. `append` writes a group of records with one `write` and
one `fsync`: a record is acknowledged only after the fsync that covers it.

At open, the file is scanned from the start; the scan stops at the first record that is incomplete (a crash
mid-write: a torn tail) or whose checksum does not match. Such a tail was never acknowledged (its fsync had
not returned), so it is cut off; its bytes are copied aside to `<file>.corrupt-<time>` first, in case a disk
error rather than a crash caused it.

One process owns one file, by an exclusive `flock`: workers of one `nbo serve` take slots 0, 1, ... in turn,
and a restarted process takes its slot back (and replays what it held).

>>> spool = Spool.open(Path("var/spool"), max_bytes=64 << 20)   # doctest: +SKIP
>>> spool.append([encode_entry("decision", record, now)])       # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from history.batch import CONTACTS, DECISION, RESPONSE
from history.codec import contact_from, decision_from, encode_record, response_from
from history.writer import HistoryWriteError

log = logging.getLogger("nbo.spool")
HEADER = struct.Struct(">II")  # payload length, crc32
MAX_SLOTS = 64
READ_CHUNK = 1 << 20


class SpoolFull(HistoryWriteError):
    """The spool holds `max_bytes` already: the write is refused (the service answers 503)."""


@dataclass(frozen=True, slots=True)
class SpooledEntry:
    """One record read back from the spool; `end` is the file offset just past it."""

    kind: str
    at: float
    record: Any
    end: int


def encode_entry(kind: str, record: Any, at: float) -> bytes:
    """One framed record (header + payload), ready to append."""
    payload = (
        b'{"kind":' + orjson.dumps(kind) + b',"at":' + orjson.dumps(at) + b',"data":' + encode_record(record) + b"}"
    )
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_payload(payload: bytes, end: int) -> SpooledEntry:
    """The entry of a payload whose checksum matched."""
    raw = orjson.loads(payload)
    kind, data = raw["kind"], raw["data"]
    if kind == DECISION:
        record: Any = decision_from(data)
    elif kind == CONTACTS:
        record = [contact_from(c) for c in data]
    elif kind == RESPONSE:
        record = response_from(data)
    else:
        raise ValueError(f"unknown spool entry kind {kind!r}")
    return SpooledEntry(kind, float(raw["at"]), record, end)


def scan(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The (end offset, payload) of every whole record with a good checksum, and where the good part ends."""
    found, offset = [], 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        start, end = offset + HEADER.size, offset + HEADER.size + length
        if end > len(data) or zlib.crc32(data[start:end]) != crc:
            break
        found.append((end, data[start:end]))
        offset = end
    return found, offset


class Spool:
    """One spool file: append (fsync'd), read back from an offset, and truncate once replayed.

    `pending` lists (end offset, spooled at) of the records not yet replayed, oldest first; `replayed`
    is the offset up to which everything was replayed. Blocking: callers run it in a thread.
    """

    def __init__(self, path: Path, fd: int, max_bytes: int) -> None:
        self.path, self._fd, self.max_bytes = path, fd, max_bytes
        self.size = 0
        self.replayed = 0
        self.pending: deque[tuple[int, float]] = deque()

    @classmethod
    def open(cls, directory: Path, *, max_bytes: int) -> Spool:
        """The first spool slot of `directory` no other process holds, scanned (torn tail cut off)."""
        directory.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            path = directory / f"spool-{slot}.log"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            spool = cls(path, fd, max_bytes)
            spool._recover()
            return spool
        raise RuntimeError(f"all {MAX_SLOTS} spool slots in {directory} are held by other processes")

    def _recover(self) -> None:
        data = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        found, good = scan(data)
        if good < len(data):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            aside.write_bytes(data[good:])
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)
            log.warning("spool tail cut off", extra={"bytes": len(data) - good, "kept_records": len(found)})
        self.size = good
        for end, payload in found:
            self.pending.append((end, float(orjson.loads(payload)["at"])))
        if found:
            log.warning("spool holds writes of a previous process", extra={"records": len(found), "bytes": good})

    def append(self, framed: Sequence[bytes], at: Sequence[float]) -> None:
        """Append records durably (one write, one fsync); `SpoolFull` refuses them all past `max_bytes`."""
        blob = b"".join(framed)
        if self.size - self.replayed + len(blob) > self.max_bytes:
            raise SpoolFull(f"history spool full ({self.size - self.replayed} of {self.max_bytes} bytes)")
        written = os.write(self._fd, blob)
        if written != len(blob):  # a short write (disk full): cut it off, so that the file stays readable
            os.ftruncate(self._fd, self.size)
            raise HistoryWriteError(f"history spool write cut short ({written} of {len(blob)} bytes)")
        os.fsync(self._fd)
        end = self.size
        for record, when in zip(framed, at, strict=True):
            end += len(record)
            self.pending.append((end, when))
        self.size = end

    def read(self, offset: int, limit: int) -> list[SpooledEntry]:
        """Up to `limit` entries starting at `offset` (a record boundary), read in chunks of READ_CHUNK."""
        chunk, found = READ_CHUNK, []
        while offset < self.size and not found:
            data = os.pread(self._fd, min(chunk, self.size - offset), offset)
            found, _ = scan(data)
            chunk *= 2  # a record larger than the chunk: read more
        return [decode_payload(payload, offset + end) for end, payload in found[:limit]]

    def mark_replayed(self, offset: int) -> None:
        """Everything before `offset` is in the database."""
        self.replayed = offset
        while self.pending and self.pending[0][0] <= offset:
            self.pending.popleft()

    def truncate_if_replayed(self) -> bool:
        """Empty the file when everything in it was replayed; whether it is empty now."""
        if self.replayed < self.size:
            return False
        if self.size:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self.size = self.replayed = 0
        return True

    @property
    def depth(self) -> tuple[int, int, float | None]:
        """(records, bytes, spooled time of the oldest) not yet replayed."""
        oldest = self.pending[0][1] if self.pending else None
        return len(self.pending), self.size - self.replayed, oldest

    def close(self) -> None:
        os.close(self._fd)  # releases the flock
