"""Contact history: decisions, contacts and responses.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Reviewed by hand; runs on PostgreSQL and SQLite. Names are final (`op.f`): the naming convention of
history.tables produced them and must not be applied a second time. Times are `timestamptz` on
PostgreSQL (SQLite stores them as UTC text). JSON payloads are JSONB on PostgreSQL. Text columns carry no
length limit, so that both dialects accept the same data (SQLite ignores a VARCHAR length that
PostgreSQL enforces).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_decisions()
    create_contacts()
    create_responses()


def create_decisions() -> None:
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("decided_at", Timestamp, nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("placement", sa.Text(), nullable=True),
        sa.Column("intent", sa.Text(), nullable=True),
        sa.Column("control_group", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("catalogue_version", sa.Text(), nullable=False),
        sa.Column("context", Json, nullable=False),
        sa.Column("candidates", Json, nullable=False),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
        # Idempotent retries: one decision per request id (NULLs do not collide).
        sa.UniqueConstraint("request_id", name=op.f("uq_decisions_request_id")),
    )
    op.create_index(op.f("ix_decisions_customer_time"), "decisions", ["customer_id", "decided_at"])


def create_contacts() -> None:
    op.create_table(
        "contacts",
        sa.Column("contact_id", sa.Text(), nullable=False),
        sa.Column("offer_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("contacted_at", Timestamp, nullable=False),
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
        # The natural key: an offer appears once per decision (or outbound send); re-sends are skipped.
        sa.PrimaryKeyConstraint("contact_id", "offer_id", name=op.f("pk_contacts")),
        sa.CheckConstraint("outcome IN ('presented', 'sent')", name=op.f("ck_contacts_outcome")),
        sa.CheckConstraint("direction IN ('inbound', 'outbound')", name=op.f("ck_contacts_direction")),
    )
    op.create_index(op.f("ix_contacts_customer_time"), "contacts", ["customer_id", "contacted_at"])
    op.create_index(op.f("ix_contacts_offer_time"), "contacts", ["offer_id", "contacted_at"])


def create_responses() -> None:
    op.create_table(
        "responses",
        sa.Column("response_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("decision_id", sa.Text(), nullable=True),
        sa.Column("offer_id", sa.Text(), nullable=False),
        sa.Column("group_id", sa.Text(), nullable=True),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("responded_at", Timestamp, nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("response_id", name=op.f("pk_responses")),
    )
    op.create_index(op.f("ix_responses_customer_time"), "responses", ["customer_id", "responded_at"])
    op.create_index(op.f("ix_responses_offer_time"), "responses", ["offer_id", "responded_at"])
    op.create_index(op.f("ix_responses_decision_offer"), "responses", ["decision_id", "offer_id"])


def downgrade() -> None:
    op.drop_table("responses")
    op.drop_table("contacts")
    op.drop_table("decisions")
