"""The history spool: its file format (torn tail, checksum), its bound, and replay into the history exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from decisioning.records import ContactRecord, DecisionRecord
from decisioning.types import Direction, Outcome
from history.spool import HEADER, Spool, SpoolFull, encode_entry
from history.spooled import SpooledHistory
from history.writer import HistoryWriteError


def decision(n: int, request_id: str | None = None) -> DecisionRecord:
    contact = ContactRecord(
        contact_id=f"d-{n}",
        customer_id=f"c-{n % 3}",
        at=1000.0 + n,
        channel="web",
        direction=Direction.INBOUND,
        offer_id="savings",
        group="g",
        outcome=Outcome.PRESENTED,
        rank=1,
    )
    return DecisionRecord(
        decision_id=f"d-{n}",
        customer_id=f"c-{n % 3}",
        at=1000.0 + n,
        channel="web",
        placement=None,
        intent=None,
        control_group=False,
        model_version="m",
        catalogue_version="v",
        contacts=(contact,),
        request_id=request_id,
    )


def test_records_round_trip(tmp_path: Path):
    spool = Spool.open(tmp_path, max_bytes=1 << 20)
    spool.append([encode_entry("decision", decision(i), 5.0) for i in range(3)], [5.0] * 3)
    entries = spool.read(0, 10)
    assert [e.record for e in entries] == [decision(i) for i in range(3)]
    assert spool.depth[:2] == (3, spool.size)
    spool.close()


def test_a_torn_tail_is_cut_off_and_the_rest_kept(tmp_path: Path):
    spool = Spool.open(tmp_path, max_bytes=1 << 20)
    spool.append([encode_entry("decision", decision(i), 5.0) for i in range(2)], [5.0] * 2)
    good = spool.size
    spool.close()
    with (tmp_path / "spool-0.log").open("ab") as f:  # a crash mid-write: half a record
        f.write(encode_entry("decision", decision(9), 5.0)[:-7])
    again = Spool.open(tmp_path, max_bytes=1 << 20)
    assert again.size == good and [e.record.decision_id for e in again.read(0, 10)] == ["d-0", "d-1"]
    assert (tmp_path / "spool-0.log").stat().st_size == good
    assert list(tmp_path.glob("spool-0.log.corrupt-*"))  # the cut bytes are kept aside
    again.close()


def test_a_bad_checksum_ends_the_good_part(tmp_path: Path):
    spool = Spool.open(tmp_path, max_bytes=1 << 20)
    first = encode_entry("decision", decision(0), 5.0)
    spool.append([first, encode_entry("decision", decision(1), 5.0)], [5.0, 5.0])
    spool.close()
    data = bytearray((tmp_path / "spool-0.log").read_bytes())
    data[len(first) + HEADER.size + 3] ^= 0xFF  # flip a byte of the second payload
    (tmp_path / "spool-0.log").write_bytes(bytes(data))
    again = Spool.open(tmp_path, max_bytes=1 << 20)
    assert [e.record.decision_id for e in again.read(0, 10)] == ["d-0"]
    again.close()


def test_a_full_spool_refuses_and_keeps_what_it_had(tmp_path: Path):
    one = encode_entry("decision", decision(0), 5.0)
    spool = Spool.open(tmp_path, max_bytes=len(one) * 2)
    spool.append([one, one], [5.0, 5.0])
    with pytest.raises(SpoolFull):
        spool.append([one], [5.0])
    assert spool.depth[0] == 2
    spool.close()


def test_each_process_takes_its_own_slot(tmp_path: Path):
    a, b = Spool.open(tmp_path, max_bytes=1 << 20), Spool.open(tmp_path, max_bytes=1 << 20)
    assert {a.path.name, b.path.name} == {"spool-0.log", "spool-1.log"}
    a.close()
    b.close()


class FakeSql:
    """SqlHistory's write contract (idempotent by decision id and request id), with an off switch."""

    url = "postgresql+asyncpg://fake"

    def __init__(self) -> None:
        self.up = True
        self.decisions: dict[str, DecisionRecord] = {}
        self.writes = 0

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return self.up

    async def record_decision(self, d: DecisionRecord) -> bool:
        await asyncio.sleep(0)
        if not self.up:
            raise HistoryWriteError("connection refused")
        self.writes += 1
        if d.decision_id in self.decisions or any(
            d.request_id and x.request_id == d.request_id for x in self.decisions.values()
        ):
            return False
        self.decisions[d.decision_id] = d
        return True

    async def decision_for_request(self, request_id: str) -> Any:
        if not self.up:
            raise OSError("down")
        return next((d for d in self.decisions.values() if d.request_id == request_id), None)


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (polling a condition of the code under test)
            await asyncio.sleep(0.01)


async def test_writes_spool_while_down_and_replay_exactly_once(tmp_path: Path):
    sql = FakeSql()
    history = SpooledHistory(sql, tmp_path, max_bytes=1 << 20, retry_seconds=0.01)  # type: ignore[arg-type]
    await history.start()
    assert await history.record_decision(decision(0))
    sql.up = False
    assert all(await asyncio.gather(*(history.record_decision(decision(i, f"r-{i}")) for i in range(1, 50))))
    assert history.spooling and history.depth[0] == 49
    assert (await history.decision_for_request("r-7")).decision_id == "d-7"  # a retry is answered from memory
    assert not await history.record_decision(decision(99, "r-7"))  # and not recorded twice
    sql.up = True
    await wait_for(lambda: not history.spooling)
    assert sorted(sql.decisions) == sorted(f"d-{i}" for i in range(50))
    assert (tmp_path / "spool-0.log").stat().st_size == 0 and history.depth[0] == 0
    assert await history.record_decision(decision(50))  # direct again
    await history.close()


async def test_what_a_crashed_process_left_is_replayed_at_start(tmp_path: Path):
    spool = Spool.open(tmp_path, max_bytes=1 << 20)
    spool.append([encode_entry("decision", decision(i), 5.0) for i in range(10)], [5.0] * 10)
    spool.close()  # the process dies here; some of it may also be in the database already
    sql = FakeSql()
    sql.decisions["d-3"] = decision(3)
    history = SpooledHistory(sql, tmp_path, max_bytes=1 << 20, retry_seconds=0.01)  # type: ignore[arg-type]
    await history.start()
    await wait_for(lambda: not history.spooling)
    assert sorted(sql.decisions) == sorted(f"d-{i}" for i in range(10))  # once each, d-3 not twice
    await history.close()


async def test_a_full_spool_refuses_the_write(tmp_path: Path):
    sql = FakeSql()
    sql.up = False
    history = SpooledHistory(sql, tmp_path, max_bytes=len(encode_entry("decision", decision(1), 5.0)) + 40)  # type: ignore[arg-type]
    await history.start()
    assert await history.record_decision(decision(1))
    with pytest.raises(HistoryWriteError, match="spool full"):  # the service answers 503
        await history.record_decision(decision(2))
    assert history.depth[0] == 1
    await history.close()
