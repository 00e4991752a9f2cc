"""Conversions between the core's history records and table rows.

Pure functions: records in, dictionaries out (for inserts), and rows back into records, events and
entries. Times stay epoch seconds here; the `EpochSeconds` column type converts them at the database edge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson

from decisioning.records import ContactRecord, DecisionRecord, HistoryEntry, ResponseRecord
from decisioning.types import ContactEvent, Direction, Outcome
from history.writer import HistoryRecordError


class Row(Protocol):
    """A table row as these functions read it: a SQLAlchemy `Row`, or a `history.sqlite_reader.ReadRow`."""

    @property
    def _mapping(self) -> Mapping[str, Any]: ...


DECISION_KIND = "decision"  # as a write's kind is named in messages (history.batch.DECISION)

# Details an API listing shows for a contact, beyond the columns every entry has.
CONTACT_DETAILS = (
    "treatment",
    "placement",
    "rank",
    "propensity",
    "value",
    "priority",
    "selection_probability",
    "model_version",
    "catalogue_version",
    "campaign",
)


class EncodedJson:
    """A JSON column's value, encoded already: in the caller's task, before the row joins a batch (see
    `encode_json`), so that a value that cannot be encoded fails that caller alone.

    A plain class, not a dataclass: orjson would serialise a dataclass as an object of its fields.
    """

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"EncodedJson({self.text!r})"


def encode_json(value: Any, what: str, kind: str) -> EncodedJson:
    """Encode a record's JSON payload (`what`, e.g. "context") now; `HistoryRecordError` if it cannot be.

    >>> encode_json({"page": "/cards"}, "context", "decision").text
    b'{"page":"/cards"}'
    >>> encode_json({"n": 2**70}, "context", "decision")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    history.writer.HistoryRecordError: decision not recorded: its context cannot be stored as JSON (...)
    """
    try:
        return EncodedJson(orjson.dumps(value, default=json_default, option=JSON_OPTIONS))
    except TypeError as error:  # orjson.JSONEncodeError: too deep, an integer beyond 64 bits, a foreign type
        raise HistoryRecordError(f"{kind} not recorded: its {what} cannot be stored as JSON ({error})") from error


def json_text(value: Any) -> str:
    """The JSON text of a JSON column's value, encoded already or not."""
    return value.text.decode() if isinstance(value, EncodedJson) else dumps_json(value)


def dumps_json(value: Any) -> str:
    """Encode a record's JSON payload (context, candidates) for a JSON column.

    Records hold read-only mappings, tuples and sometimes numpy scalars from scoring; all of them are
    written as plain JSON rather than refused.

    >>> from types import MappingProxyType
    >>> dumps_json({"a": MappingProxyType({"b": (1, 2)})})
    '{"a":{"b":[1,2]}}'
    """
    return orjson.dumps(value, default=json_default, option=JSON_OPTIONS).decode()


JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_default(value: Any) -> Any:
    """orjson's fallback for what records hold beyond plain JSON: read-only mappings and sets (and JSON
    encoded already, which goes in as it is)."""
    if isinstance(value, EncodedJson):
        return orjson.Fragment(value.text)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def decision_row(d: DecisionRecord) -> dict[str, Any]:
    """The `decisions` row of a decision (its contacts go to `contacts`, see `contact_row`).

    Its JSON payloads are encoded here, in the caller's task: `HistoryRecordError` for one that cannot be.
    """
    return {
        "decision_id": d.decision_id,
        "request_id": d.request_id,
        "customer_id": d.customer_id,
        "decided_at": d.at,
        "channel": d.channel,
        "placement": d.placement,
        "intent": d.intent,
        "control_group": d.control_group,
        "model_version": d.model_version,
        "catalogue_version": d.catalogue_version,
        "context": encode_json(d.context, "context", DECISION_KIND),
        "candidates": encode_json(d.candidates, "candidates", DECISION_KIND),
        "features": None if d.features is None else encode_json(d.features, "features", DECISION_KIND),
        "feature_schema": d.feature_schema,
    }


def contact_row(c: ContactRecord) -> dict[str, Any]:
    """The `contacts` row of one presented, selected or sent offer."""
    row = {
        "contact_id": c.contact_id,
        "offer_id": c.offer_id,
        "customer_id": c.customer_id,
        "contacted_at": c.at,
        "channel": c.channel,
        "direction": c.direction.value,
        "group_id": c.group,
        "outcome": c.outcome.value,
        "decision_id": c.decision_id,
    }
    row.update({name: getattr(c, name) for name in CONTACT_DETAILS})
    return row


def response_row(r: ResponseRecord, recorded_at: float) -> dict[str, Any]:
    """The `responses` row of a response; `recorded_at` is when the history received it."""
    return {
        "response_id": r.response_id,
        "customer_id": r.customer_id,
        "decision_id": r.decision_id,
        "offer_id": r.offer_id,
        "group_id": r.group,
        "channel": r.channel,
        "outcome": r.outcome.value,
        "responded_at": r.at,
        "recorded_at": recorded_at,
    }


def contact_from_row(row: Row) -> ContactRecord:
    """Rebuild a `ContactRecord` from a full `contacts` row."""
    m = row._mapping
    return ContactRecord(
        contact_id=m["contact_id"],
        customer_id=m["customer_id"],
        at=m["contacted_at"],
        channel=m["channel"],
        direction=Direction(m["direction"]),
        offer_id=m["offer_id"],
        group=m["group_id"],
        outcome=Outcome(m["outcome"]),
        decision_id=m["decision_id"],
        **{name: m[name] for name in CONTACT_DETAILS},
    )


def decision_from_rows(decision: Row, offers: Sequence[Row]) -> DecisionRecord:
    """Rebuild a `DecisionRecord` from its `decisions` row and its `contacts` rows (any order: they are
    put in rank order, unranked last)."""
    m = decision._mapping
    found = sorted(map(contact_from_row, offers), key=lambda c: (c.rank is None, c.rank or 0, c.offer_id))
    return DecisionRecord(
        decision_id=m["decision_id"],
        customer_id=m["customer_id"],
        at=m["decided_at"],
        channel=m["channel"],
        placement=m["placement"],
        intent=m["intent"],
        control_group=m["control_group"],
        model_version=m["model_version"],
        catalogue_version=m["catalogue_version"],
        contacts=tuple(found),
        context=m["context"],
        candidates=tuple(m["candidates"]),
        request_id=m["request_id"],
        features=None if m["features"] is None else tuple(m["features"]),
        feature_schema=m["feature_schema"],
    )


def contact_event(row: Row) -> ContactEvent:
    """The summary event of a `contacts` row, keyed by the decision responses refer to: the contact's
    own id, or the outbound decision a send confirms (as `ContactRecord.event` does)."""
    m = row._mapping
    decision_key = m["decision_id"] or m["contact_id"]
    return ContactEvent(
        m["contacted_at"], m["offer_id"], m["group_id"], m["channel"], Outcome(m["outcome"]), decision_key
    )


def response_event(row: Row) -> ContactEvent:
    """The summary event of a `responses` row (an unknown group reads as "")."""
    m = row._mapping
    group = m["group_id"] or ""
    return ContactEvent(
        m["responded_at"], m["offer_id"], group, m["channel"], Outcome(m["outcome"]), m["decision_id"]
    )


def response_from_row(row: Row) -> ResponseRecord:
    """Rebuild a `ResponseRecord` from a full `responses` row."""
    m = row._mapping
    return ResponseRecord(
        response_id=m["response_id"],
        customer_id=m["customer_id"],
        offer_id=m["offer_id"],
        channel=m["channel"],
        outcome=Outcome(m["outcome"]),
        at=m["responded_at"],
        decision_id=m["decision_id"],
        group=m["group_id"],
    )


def contact_entry(row: Row) -> HistoryEntry:
    """A `contacts` row as the API lists it."""
    return entry_of_contact(contact_from_row(row))


def response_entry(row: Row) -> HistoryEntry:
    """A `responses` row as the API lists it, with when the history received it."""
    return entry_of_response(response_from_row(row), row._mapping["recorded_at"])


def entry_of_contact(c: ContactRecord) -> HistoryEntry:
    """A contact as the API lists it; absent optional details are left out. Its `decision_id` is the
    decision it belongs to (its own id, or the outbound decision a send confirms)."""
    details = {name: getattr(c, name) for name in CONTACT_DETAILS if getattr(c, name) is not None}
    return HistoryEntry(
        kind="contact",
        id=c.contact_id,
        customer_id=c.customer_id,
        at=c.at,
        channel=c.channel,
        direction=c.direction.value,
        offer_id=c.offer_id,
        group=c.group,
        outcome=c.outcome.value,
        decision_id=c.decision_key,
        details=details,
    )


def entry_of_response(r: ResponseRecord, recorded_at: float | None) -> HistoryEntry:
    """A response as the API lists it: responses come from the customer, so inbound. `recorded_at` is
    None for a response not yet stored (write-behind): it is then left out of the details."""
    return HistoryEntry(
        kind="response",
        id=r.response_id,
        customer_id=r.customer_id,
        at=r.at,
        channel=r.channel,
        direction=Direction.INBOUND.value,
        offer_id=r.offer_id,
        group=r.group,
        outcome=r.outcome.value,
        decision_id=r.decision_id,
        details={} if recorded_at is None else {"recorded_at": recorded_at},
    )
