"""The write-behind stream's codec: history records as orjson, and back, exactly.

One stream entry is `kind` + `data`: a `DecisionRecord`, a list of `ContactRecord` or a `ResponseRecord`.
The pending index (`history.pending`) keeps single contacts and responses in the same encoding.

>>> decode_entry({KIND: b"contacts", DATA: b"[]"})
('contacts', [])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from decisioning.records import ContactRecord, DecisionRecord, ResponseRecord
from decisioning.types import Direction, Outcome
from history.batch import CONTACTS, DECISION, RESPONSE
from history.rows import JSON_OPTIONS, json_default

KIND, DATA = b"kind", b"data"  # the two fields of a stream entry


def encode_record(record: DecisionRecord | ContactRecord | ResponseRecord | Sequence[ContactRecord]) -> bytes:
    """A record (or a list of contacts) as orjson. Every field is kept, by name; read-only mappings and
    numpy scalars are written as plain JSON, as `SqlHistory` writes them. Raises TypeError for a value
    orjson cannot encode (too deep, an integer beyond 64 bits, a foreign type)."""
    return orjson.dumps(record, default=json_default, option=JSON_OPTIONS)


def decode_entry(fields: dict[bytes, bytes]) -> tuple[str, Any]:
    """(kind, record) of a stream entry: a `DecisionRecord`, a list of `ContactRecord` or a `ResponseRecord`.

    Raises ValueError (or KeyError, TypeError) for an entry this code cannot read.
    """
    kind, data = fields[KIND].decode(), orjson.loads(fields[DATA])
    if kind == DECISION:
        return kind, decision_from(data)
    if kind == CONTACTS:
        return kind, [contact_from(c) for c in data]
    if kind == RESPONSE:
        return kind, response_from(data)
    raise ValueError(f"unknown history entry kind {kind!r}")


def contact_from(data: dict[str, Any]) -> ContactRecord:
    return ContactRecord(**{**data, "direction": Direction(data["direction"]), "outcome": Outcome(data["outcome"])})


def response_from(data: dict[str, Any]) -> ResponseRecord:
    return ResponseRecord(**{**data, "outcome": Outcome(data["outcome"])})


def decision_from(data: dict[str, Any]) -> DecisionRecord:
    # `context` stays the dict the engine builds; `candidates` is a tuple of dicts, as in the record.
    # An entry written before features were kept has no `features` key: the record's default (None) holds.
    contacts_ = tuple(contact_from(c) for c in data["contacts"])
    features = data.get("features")
    return DecisionRecord(
        **{
            **data,
            "contacts": contacts_,
            "candidates": tuple(data["candidates"]),
            "features": None if features is None else tuple(features),
        }
    )
