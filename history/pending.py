"""The write-behind stream's pending index: what is appended but not yet drained, readable by id and by
customer, so that `StreamHistory`'s reads see a decision the moment it is acknowledged.

Keys, all in the stream's Redis Cluster slot (`marker_prefix`: the stream's hash tag, `{<stream>}`):
- `{<stream>}:d:<id>`, a hash per decision or send id: `decision` -> the `DecisionRecord` (decisions only),
  `o:<offer_id>` -> the `ContactRecord` of a send, or "" for a decision's contact (read it from `decision`).
  Finds a contact by (decision id, offer), a decision by id, and refuses a contact that is pending already.
- `{<stream>}:p:<customer_id>`, a hash per customer: `["c",contact_id,offer_id]` -> a `ContactRecord`,
  `["r",response_id]` -> a `ResponseRecord` (fields are JSON arrays: ids may hold any character). What a
  summary, a listing or `latest_contact` merges with SQL.
- the idempotency markers: `{<stream>}:q:<request_id>` -> decision id, `{<stream>}:r:<response_id>`.

The append script writes the index in the same atomic call as the XADD (one round trip). The drainer
deletes an entry's fields in the MULTI that acknowledges it, after its rows are committed, so a reader
that asks Redis first and SQL second never misses an entry (it may see one twice: the merge drops the
copy, by (contact_id, offer_id), response_id and decision_id). Each index key expires `marker_ttl` after its
last write: the index stays bounded even when no drainer comes (reads then lag as before).

>>> keys = PendingIndex("nbo:history")
>>> keys.customer("c-42"), keys.decision("d-1")
('{nbo:history}:p:c-42', '{nbo:history}:d:d-1')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.summary import HistorySummary
from history import rows
from history.batch import CONTACTS, DECISION, RESPONSE
from history.codec import contact_from, decision_from, encode_record, response_from

DECISION_FIELD = b"decision"
# Modes of an index item (see `history.stream`'s append script).
GATE = "gate"  # refuse the whole write when the field exists; its value is the entry's own payload
FIRST = "first"  # set when absent; the script reports whether it was
THEN = "then"  # set only if the FIRST before it was absent
SET = "set"


class IndexItem(NamedTuple):
    """One field the append script sets in a pending hash."""

    key: str
    field: bytes
    value: bytes
    mode: str


@dataclass(slots=True)
class Pending:
    """A customer's contacts and responses appended to the stream and not yet drained."""

    contacts: list[ContactRecord] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)


def marker_prefix(stream: str) -> str:
    """A key prefix in the same Redis Cluster slot as `stream`: its hash tag, or the stream name as one.

    >>> marker_prefix("nbo:history"), marker_prefix("{nbo}:history")
    ('{nbo:history}', '{nbo}:history')
    """
    opening = stream.find("{")
    closing = stream.find("}", opening + 1)
    has_tag = opening >= 0 and closing > opening + 1
    return stream if has_tag else f"{{{stream}}}"


class PendingIndex:
    """The key scheme of one stream's pending index and markers, and what each record puts in it."""

    def __init__(self, stream: str) -> None:
        self.prefix = marker_prefix(stream)

    def request(self, request_id: str) -> str:
        return f"{self.prefix}:q:{request_id}"

    def response(self, response_id: str) -> str:
        return f"{self.prefix}:r:{response_id}"

    def decision(self, decision_id: str) -> str:
        return f"{self.prefix}:d:{decision_id}"

    def customer(self, customer_id: str) -> str:
        return f"{self.prefix}:p:{customer_id}"

    # --- what a write indexes -------------------------------------------------------------------------

    def decision_items(self, decision: DecisionRecord) -> list[IndexItem]:
        """The decision under its id (a gate: a decision id is appended once), its contacts by offer and
        under its customer."""
        key = self.decision(decision.decision_id)
        items = [IndexItem(key, DECISION_FIELD, b"", GATE)]
        for c in decision.contacts:
            items.append(IndexItem(key, offer_field(c.offer_id), b"", SET))
            items.append(IndexItem(self.customer(c.customer_id), contact_field(c), encode_record(c), SET))
        return items

    def contact_items(self, contacts: Sequence[ContactRecord]) -> list[IndexItem]:
        """Each send by its id and offer (FIRST: one already pending is not added again), then under its
        customer (only if it was added)."""
        items = []
        for c in contacts:
            payload = encode_record(c)
            items.append(IndexItem(self.decision(c.contact_id), offer_field(c.offer_id), payload, FIRST))
            items.append(IndexItem(self.customer(c.customer_id), contact_field(c), payload, THEN))
        return items

    def response_items(self, response: ResponseRecord) -> list[IndexItem]:
        return [IndexItem(self.customer(response.customer_id), response_field(response), encode_record(response), SET)]

    # --- what a drained entry takes out ---------------------------------------------------------------

    def cleanup(self, drained: Iterable[tuple[str, Any]]) -> dict[str, set[bytes]]:
        """The fields to delete, by key, once these (kind, record) entries are stored (or set aside)."""
        fields: dict[str, set[bytes]] = {}
        for kind, record in drained:
            for key, name in self._fields_of(kind, record):
                fields.setdefault(key, set()).add(name)
        return fields

    def _fields_of(self, kind: str, record: Any) -> Iterable[tuple[str, bytes]]:
        if kind == DECISION:
            yield self.decision(record.decision_id), DECISION_FIELD
            for c in record.contacts:
                yield self.decision(c.contact_id), offer_field(c.offer_id)
                yield self.customer(c.customer_id), contact_field(c)
        elif kind == CONTACTS:
            for c in record:
                yield self.decision(c.contact_id), offer_field(c.offer_id)
                yield self.customer(c.customer_id), contact_field(c)
        elif kind == RESPONSE:
            yield self.customer(record.customer_id), response_field(record)


def offer_field(offer_id: str) -> bytes:
    return b"o:" + offer_id.encode()


def contact_field(c: ContactRecord) -> bytes:
    return orjson.dumps(["c", c.contact_id, c.offer_id])


def response_field(r: ResponseRecord) -> bytes:
    return orjson.dumps(["r", r.response_id])


# --- reading it back ------------------------------------------------------------------------------------


def pending_of(raw: dict[bytes, bytes]) -> Pending:
    """A customer's pending records from the HGETALL of its hash."""
    pending = Pending()
    for name, value in raw.items():
        if orjson.loads(name)[0] == "c":
            pending.contacts.append(contact_from(orjson.loads(value)))
        else:
            pending.responses.append(response_from(orjson.loads(value)))
    return pending


def contact_in(raw: Sequence[bytes | None], offer_id: str) -> ContactRecord | None:
    """The contact of `offer_id` from HMGET `o:<offer_id>`, `decision` of a pending decision hash."""
    send, decision = raw
    if send:
        return contact_from(orjson.loads(send))
    if send is not None and decision is not None:  # a decision's contact: read from the decision itself
        return next((c for c in decision_from(orjson.loads(decision)).contacts if c.offer_id == offer_id), None)
    return None


# --- merged with what SQL has ---------------------------------------------------------------------------


def merged_summary(
    contact_rows: Sequence[Any], response_rows: Sequence[Any], pending: Pending, since: float
) -> HistorySummary:
    """The summary of SQL's newest rows plus the pending records SQL does not hold yet (at or after `since`).

    Contacts first, and a stable sort: at equal times a contact precedes the response to it.
    """
    contacts_, responses_ = _not_stored(contact_rows, response_rows, pending)
    events = [
        *map(rows.contact_event, contact_rows),
        *(c.event() for c in contacts_ if c.at >= since),
        *map(rows.response_event, response_rows),
        *(r.event(r.group or "") for r in responses_ if r.at >= since),
    ]
    return HistorySummary().with_events(sorted(events, key=lambda e: e.at))


def merged_entries(
    contact_rows: Sequence[Any], response_rows: Sequence[Any], pending: Pending, limit: int
) -> list[HistoryEntry]:
    """SQL's newest rows and the pending records, as the API lists them: newest first, at most `limit`."""
    contacts_, responses_ = _not_stored(contact_rows, response_rows, pending)
    listed = [
        *map(rows.contact_entry, contact_rows),
        *map(rows.entry_of_contact, contacts_),
        *map(rows.response_entry, response_rows),
        *(rows.entry_of_response(r, None) for r in responses_),
    ]
    return sorted(listed, key=lambda e: e.at, reverse=True)[:limit]


def _not_stored(
    contact_rows: Sequence[Any], response_rows: Sequence[Any], pending: Pending
) -> tuple[list[ContactRecord], list[ResponseRecord]]:
    """The pending records SQL's rows do not hold (a drained entry stays indexed until it is acknowledged)."""
    stored_contacts = {(r.contact_id, r.offer_id) for r in contact_rows}
    stored_responses = {r.response_id for r in response_rows}
    return (
        [c for c in pending.contacts if (c.contact_id, c.offer_id) not in stored_contacts],
        [r for r in pending.responses if r.response_id not in stored_responses],
    )
