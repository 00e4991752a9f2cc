"""The unified contact history as SQLAlchemy Core tables (PostgreSQL in production, SQLite embedded).

Three append-only tables:
- `decisions`: one row per decision returned to a caller, with its request, context and logged candidates;
- `contacts`: one row per offer put in front of a customer (presented in an inbound decision, selected in
  an outbound one, or sent outbound), keyed by (contact_id, offer_id); a send that confirms an outbound
  decision's selection names it in `decision_id`;
- `responses`: what customers answered, idempotent by `response_id`.
And `api_keys`, the hashed API keys of the calling systems (not history: it lives here to share the database).

Times are stored as timezone-aware UTC datetimes (`timestamptz` on PostgreSQL; SQLite has no time zone
type, so it stores the UTC wall time as fixed-width ISO text, which sorts chronologically). The records of
the core carry epoch seconds: `EpochSeconds` converts at this edge, to the microsecond.

The migrations in `migrations/versions/` are written by hand from these definitions; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# Constraint names are part of the schema that migrations refer to: derive them, never let the database
# pick (PostgreSQL and SQLite would pick differently).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Text columns carry no length limit: SQLite ignores a VARCHAR length that PostgreSQL enforces, and the two
# dialects must accept the same data.
# JSONB on PostgreSQL (indexable, compact); JSON text elsewhere.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class EpochSeconds(sa.TypeDecorator[float]):
    """A timezone-aware UTC timestamp column that Python code reads and writes as epoch seconds.

    >>> EpochSeconds().process_bind_param(0.0, None)
    datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.astimezone(UTC)
        return datetime.fromtimestamp(float(value), UTC)

    def process_result_value(self, value: Any, dialect: Any) -> float | None:
        if value is None:
            return None
        # SQLite hands back a naive datetime: it is UTC because only UTC is ever written.
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()


decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.Text(), primary_key=True),
    sa.Column("request_id", sa.Text(), nullable=True, unique=True),
    sa.Column("customer_id", sa.Text(), nullable=False),
    sa.Column("decided_at", EpochSeconds(), nullable=False),
    sa.Column("channel", sa.Text(), nullable=False),
    sa.Column("placement", sa.Text(), nullable=True),
    sa.Column("intent", sa.Text(), nullable=True),
    sa.Column("control_group", sa.Boolean(), nullable=False),
    sa.Column("model_version", sa.Text(), nullable=False),
    sa.Column("catalogue_version", sa.Text(), nullable=False),
    sa.Column("context", Json, nullable=False),
    sa.Column("candidates", Json, nullable=False),
    # The validated feature values the decision was made on, a JSON array in the feature schema's order,
    # and that schema's version (migration 0004). Plain JSON text, not JSONB, on PostgreSQL too: nothing
    # queries inside it, and text keeps the array as compact as it was written. NULL before 0004.
    sa.Column("features", sa.JSON(), nullable=True),
    sa.Column("feature_schema", sa.Text(), nullable=True),
    sa.Index("ix_decisions_customer_time", "customer_id", "decided_at"),
)

contacts = sa.Table(
    "contacts",
    metadata,
    # contact_id is the decision id for inbound decisions, the send's id for outbound contacts.
    sa.Column("contact_id", sa.Text(), primary_key=True),
    sa.Column("offer_id", sa.Text(), primary_key=True),
    sa.Column("customer_id", sa.Text(), nullable=False),
    sa.Column("contacted_at", EpochSeconds(), nullable=False),
    sa.Column("channel", sa.Text(), nullable=False),
    sa.Column("direction", sa.Text(), nullable=False),
    sa.Column("group_id", sa.Text(), nullable=False),
    sa.Column("outcome", sa.Text(), nullable=False),
    sa.Column("treatment", sa.Text(), nullable=True),
    sa.Column("placement", sa.Text(), nullable=True),
    sa.Column("rank", sa.Integer(), nullable=True),
    sa.Column("propensity", sa.Float(), nullable=True),
    sa.Column("value", sa.Float(), nullable=True),
    sa.Column("priority", sa.Float(), nullable=True),
    sa.Column("selection_probability", sa.Float(), nullable=True),
    sa.Column("model_version", sa.Text(), nullable=True),
    sa.Column("catalogue_version", sa.Text(), nullable=True),
    sa.Column("campaign", sa.Text(), nullable=True),
    # A send that confirms an outbound decision's selection names that decision (NULL otherwise).
    sa.Column("decision_id", sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('presented', 'selected', 'sent')", name="outcome"),
    sa.CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
    sa.Index("ix_contacts_customer_time", "customer_id", "contacted_at"),
    sa.Index("ix_contacts_offer_time", "offer_id", "contacted_at"),
    sa.Index("ix_contacts_decision_offer", "decision_id", "offer_id"),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("response_id", sa.Text(), primary_key=True),
    sa.Column("customer_id", sa.Text(), nullable=False),
    # No foreign key: a response may name an outbound send, or arrive before we know its contact.
    sa.Column("decision_id", sa.Text(), nullable=True),
    sa.Column("offer_id", sa.Text(), nullable=False),
    sa.Column("group_id", sa.Text(), nullable=True),
    sa.Column("channel", sa.Text(), nullable=False),
    sa.Column("outcome", sa.Text(), nullable=False),
    sa.Column("responded_at", EpochSeconds(), nullable=False),
    sa.Column("recorded_at", EpochSeconds(), nullable=False),
    sa.Index("ix_responses_customer_time", "customer_id", "responded_at"),
    sa.Index("ix_responses_offer_time", "offer_id", "responded_at"),
    sa.Index("ix_responses_decision_offer", "decision_id", "offer_id"),
)

# The API keys of the calling systems (see history/keys.py). Only a SHA-256 of each key is stored; `key_id`
# is the key's public part (it is in the key itself), shown by `nbo keys list`.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.Text(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False, unique=True),
    sa.Column("key_hash", sa.Text(), nullable=False),
    sa.Column("scopes", Json, nullable=False),
    # NULL: every channel (created with --all-channels); otherwise the list of channels the key may use.
    sa.Column("channels", Json, nullable=True),
    sa.Column("created_at", EpochSeconds(), nullable=False),
    sa.Column("revoked_at", EpochSeconds(), nullable=True),
)

ALL_TABLES = (decisions, contacts, responses, api_keys)
