"""Sending a prescored list: its chosen offers become `sent` contacts in the unified history.

Each row with an offer becomes a `ReportSend` for the application layer (`DecisionService.record_contacts`),
so the sends go through the same checks, history and summary updates as a campaign tool's POST
/v1/contacts, and tomorrow's inbound decisions and caps see them. The contact id is derived from (run id,
customer, offer): recording the same list twice records nothing twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from service.commands import ReportSend
from service.service import DecisionService


def contact_id(run_id: str, customer_id: str, offer_id: str) -> str:
    """A stable id for one send of a list: the same inputs always give the same id.

    >>> contact_id("r-1", "c-000042", "card_gold") == contact_id("r-1", "c-000042", "card_gold")
    True
    """
    digest = hashlib.blake2b(f"{run_id}|{customer_id}|{offer_id}".encode(), digest_size=12).hexdigest()
    return f"pre-{digest}"


def sends_from_list(
    path: Path, channel: str, campaign: str | None, batch_size: int = 1000
) -> Iterator[list[ReportSend]]:
    """The list's chosen offers (rows with an offer id) as sends, `batch_size` at a time."""
    columns = ["run_id", "customer_id", "offer_id", "treatment"]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        rows = batch.to_pylist()
        yield [
            ReportSend(contact_id(r["run_id"], r["customer_id"], r["offer_id"]), r["customer_id"], r["offer_id"],
                       channel, treatment=r["treatment"], campaign=campaign)
            for r in rows
            if r["offer_id"] is not None
        ]


@dataclass
class RecordedList:
    received: int = 0
    recorded: int = 0  # new contacts (a rerun of the same list records 0)
    over_policies: Counter[str] = field(default_factory=Counter)  # sends recorded over a cap, per policy
    over_budget: int = 0


async def record_list(
    service: DecisionService, path: Path, channel: str, campaign: str | None,
    progress: Callable[[int], None] | None = None,
) -> RecordedList:  # fmt: skip
    """Record every chosen offer of the list as sent in `channel`."""
    outcome = RecordedList()
    for sends in sends_from_list(path, channel, campaign):
        if not sends:
            continue
        result = await service.record_contacts(sends)
        outcome.received += result.received
        outcome.recorded += result.recorded
        for answer in result.sends:
            outcome.over_policies.update(answer.over_policies)
            outcome.over_budget += bool(answer.over_budget)
        if progress is not None:
            progress(len(sends))
    return outcome
