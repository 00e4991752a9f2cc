"""Outbound decisions: contacts may be `selected`, and a send names the decision it confirms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Reviewed by hand; runs on PostgreSQL and SQLite. Names are final (`op.f`), as in 0001.
- The outcome CHECK of `contacts` also allows 'selected' (an outbound decision's pick, stored as a contact
  row with direction outbound until the campaign tool confirms the send).
- `contacts.decision_id` (nullable text): the outbound decision a send confirms; NULL for every row written
  before, which is right (no send confirmed a decision then).
- `ix_contacts_decision_offer` on (decision_id, offer_id): a confirmation is looked up by its decision.

SQLite cannot alter a CHECK constraint in place: `batch_alter_table` copies the table (its rows, indexes and
other named constraints come along; 0001 named every constraint, so the reflection finds them). PostgreSQL
alters in place; adding a nullable column without a default rewrites nothing.

Downgrade drops the column and restores the old CHECK. It refuses, before changing anything, while any
contact is `selected`: those rows have no place in the old schema, and deleting history is not a
downgrade's call. (Checked first because SQLite's batch copy, failing halfway, would leave its temporary
table behind: SQLite DDL is not transactional under Alembic.)
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES_BEFORE = "outcome IN ('presented', 'sent')"
OUTCOMES_AFTER = "outcome IN ('presented', 'selected', 'sent')"


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_constraint(op.f("ck_contacts_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_contacts_outcome"), OUTCOMES_AFTER)
        batch.add_column(sa.Column("decision_id", sa.Text(), nullable=True))
    op.create_index(op.f("ix_contacts_decision_offer"), "contacts", ["decision_id", "offer_id"])


def downgrade() -> None:
    refuse_if_selected()
    op.drop_index(op.f("ix_contacts_decision_offer"), table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("decision_id")
        batch.drop_constraint(op.f("ck_contacts_outcome"), type_="check")
        batch.create_check_constraint(op.f("ck_contacts_outcome"), OUTCOMES_BEFORE)


def refuse_if_selected() -> None:
    if context.is_offline_mode():  # `--sql` prints the script: whoever runs it checks
        return
    selected = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM contacts WHERE outcome = 'selected'")).scalar()
    if selected:
        raise RuntimeError(f"cannot downgrade below 0002: {selected} contacts are 'selected' (outbound decisions)")
