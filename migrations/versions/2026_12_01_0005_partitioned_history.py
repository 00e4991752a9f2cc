"""Partitioned history: contacts and responses partitioned by month on PostgreSQL, with key tables.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Reviewed by hand. PostgreSQL only: on SQLite (one file, one table each, retention by DELETE) this revision
changes nothing.

- `contacts` becomes `PARTITION BY RANGE (contacted_at)`, `responses` `PARTITION BY RANGE (responded_at)`,
  one partition per calendar month in UTC, named `<table>_pYYYY_MM`. PostgreSQL requires the partition key
  in every unique constraint, so the primary keys become (contact_id, offer_id, contacted_at) and
  (response_id, responded_at): they no longer say "one row per contact" by themselves.
- Idempotency stays exact through two small unpartitioned key tables, `contact_keys` (contact_id,
  offer_id) and `response_keys` (response_id), each with the row's time: the writer claims a key there
  (INSERT ... ON CONFLICT DO NOTHING) and inserts the row only when the claim succeeded, in the same
  statement (history.postgres_writer). Retention deletes the keys of the months it drops.
- Partitions are created for every month from the oldest row to three months past the current one;
  `nbo history partitions --ahead N` (and the service at start) create later ones. A DEFAULT partition
  (`<table>_default`) takes a row of any month without its own partition (a late response, a backfill,
  months not created in time), so that no write is ever refused for its date; creating a month's
  partition later moves that month's rows out of it (history.partitions).
- Existing rows are copied into the new tables inside the migration's transaction (PostgreSQL DDL is
  transactional: a failure leaves the 0002 tables as they were). It rewrites both tables, under an
  exclusive lock: on a large history, run it in a maintenance window. Stop the previous release's
  writers first (service and drainers): they would insert contacts without claiming their keys, which
  a later retry of the same contact could then not see.

Downgrade copies the rows back into unpartitioned tables with the 0002 keys and drops the key tables. Rows
that only the partitioned keys allowed cannot exist (the key tables enforced the old keys), so nothing is
lost.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AHEAD_MONTHS = 3

CONTACT_COLUMNS = """
    contact_id text NOT NULL, offer_id text NOT NULL, customer_id text NOT NULL,
    contacted_at timestamptz NOT NULL, channel text NOT NULL, direction text NOT NULL,
    group_id text NOT NULL, outcome text NOT NULL, treatment text, placement text, rank integer,
    propensity double precision, value double precision, priority double precision,
    selection_probability double precision, model_version text, catalogue_version text, campaign text,
    decision_id text,
    CONSTRAINT ck_contacts_outcome CHECK (outcome IN ('presented', 'selected', 'sent')),
    CONSTRAINT ck_contacts_direction CHECK (direction IN ('inbound', 'outbound'))
"""
RESPONSE_COLUMNS = """
    response_id text NOT NULL, customer_id text NOT NULL, decision_id text, offer_id text NOT NULL,
    group_id text, channel text NOT NULL, outcome text NOT NULL, responded_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL
"""
CONTACT_NAMES = (
    "contact_id, offer_id, customer_id, contacted_at, channel, direction, group_id, outcome, treatment, "
    "placement, rank, propensity, value, priority, selection_probability, model_version, catalogue_version, "
    "campaign, decision_id"
)
RESPONSE_NAMES = (
    "response_id, customer_id, decision_id, offer_id, group_id, channel, outcome, responded_at, recorded_at"
)
INDEXES = {
    "contacts": {
        "ix_contacts_customer_time": "customer_id, contacted_at",
        "ix_contacts_offer_time": "offer_id, contacted_at",
        "ix_contacts_decision_offer": "decision_id, offer_id",
    },
    "responses": {
        "ix_responses_customer_time": "customer_id, responded_at",
        "ix_responses_offer_time": "offer_id, responded_at",
        "ix_responses_decision_offer": "decision_id, offer_id",
    },
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    months = _months_to_create()
    _partition("contacts", CONTACT_COLUMNS, "contact_id, offer_id", "contacted_at", CONTACT_NAMES, months)
    _partition("responses", RESPONSE_COLUMNS, "response_id", "responded_at", RESPONSE_NAMES, months)


def _partition(table: str, columns: str, key: str, at: str, names: str, months: list[datetime]) -> None:
    """Move `table` aside, create it partitioned with its key table, copy the rows, drop the old one."""
    old = f"{table}_0002"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    op.execute(f"ALTER TABLE {old} RENAME CONSTRAINT pk_{table} TO pk_{old}")
    for index in INDEXES[table]:
        op.execute(f"DROP INDEX {index}")
    op.execute(
        f"CREATE TABLE {table} ({columns}, CONSTRAINT pk_{table} PRIMARY KEY ({key}, {at})) PARTITION BY RANGE ({at})"
    )
    for index, indexed in INDEXES[table].items():
        op.execute(f"CREATE INDEX {index} ON {table} ({indexed})")
    op.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    for month in months:
        op.execute(_create_partition(table, month))
    keys = _key_table(table)
    key_columns = f"{_key_columns(key)}, {at} timestamptz NOT NULL"
    op.execute(f"CREATE TABLE {keys} ({key_columns}, CONSTRAINT pk_{keys} PRIMARY KEY ({key}))")
    op.execute(f"CREATE INDEX ix_{keys}_{at} ON {keys} ({at})")  # retention deletes keys by time
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")
    op.execute(f"INSERT INTO {keys} ({key}, {at}) SELECT {key}, {at} FROM {old}")
    op.execute(f"DROP TABLE {old}")


def _months_to_create() -> list[datetime]:
    """Month starts from the oldest stored contact or response to AHEAD_MONTHS past the current month."""
    bind = op.get_bind()
    oldest = bind.execute(
        sa.text("SELECT least((SELECT min(contacted_at) FROM contacts), (SELECT min(responded_at) FROM responses))")
    ).scalar()
    newest = bind.execute(
        sa.text("SELECT greatest((SELECT max(contacted_at) FROM contacts), (SELECT max(responded_at) FROM responses))")
    ).scalar()
    now = datetime.now(UTC)
    first = _month_start(min(oldest or now, now))
    last = _add_months(_month_start(max(newest or now, now)), AHEAD_MONTHS)
    months = [first]
    while months[-1] < last:
        months.append(_add_months(months[-1], 1))
    return months


def _create_partition(table: str, month: datetime) -> str:
    return (
        f"CREATE TABLE {table}_p{month:%Y_%m} PARTITION OF {table} "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_add_months(month, 1).isoformat()}')"
    )


def _key_table(table: str) -> str:
    return {"contacts": "contact_keys", "responses": "response_keys"}[table]


def _key_columns(key: str) -> str:
    return ", ".join(f"{name.strip()} text NOT NULL" for name in key.split(","))


def _month_start(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def _add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _unpartition("contacts", CONTACT_COLUMNS, "contact_id, offer_id", CONTACT_NAMES)
    _unpartition("responses", RESPONSE_COLUMNS, "response_id", RESPONSE_NAMES)


def _unpartition(table: str, columns: str, key: str, names: str) -> None:
    partitioned = f"{table}_0005"
    op.execute(f"ALTER TABLE {table} RENAME TO {partitioned}")
    op.execute(f"ALTER TABLE {partitioned} RENAME CONSTRAINT pk_{table} TO pk_{partitioned}")
    for index in INDEXES[table]:
        op.execute(f"DROP INDEX {index}")
    op.execute(f"CREATE TABLE {table} ({columns}, CONSTRAINT pk_{table} PRIMARY KEY ({key}))")
    for index, indexed in INDEXES[table].items():
        op.execute(f"CREATE INDEX {index} ON {table} ({indexed})")
    op.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {partitioned}")
    op.execute(f"DROP TABLE {partitioned}")  # its partitions go with it
    op.execute(f"DROP TABLE {_key_table(table)}")
