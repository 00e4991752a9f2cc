"""API keys of the calling systems: hashed, with scopes and allowed channels.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Reviewed by hand; runs on PostgreSQL and SQLite. Names are final (`op.f`), as in 0001.
- `api_keys`: one row per key. `key_id` is the key's public part (the key reads `nbo_<key_id>_<secret>`),
  `key_hash` the SHA-256 of the whole key (the key itself is never stored), `scopes` a JSON list,
  `channels` a JSON list or NULL for every channel (a key created with `--all-channels`), `revoked_at`
  NULL while the key is valid. `name` (the calling system) is unique, revoked keys included, so that
  `nbo keys revoke NAME` names one key.

A new table: nothing existing changes. Downgrade drops it (and with it every key: callers then need new ones).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("key_hash", sa.Text(), nullable=False),
        sa.Column("scopes", Json, nullable=False),
        sa.Column("channels", Json, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
