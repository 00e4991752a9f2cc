"""Decisions keep the feature values they were decided on, and the feature schema's version.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Reviewed by hand; runs on PostgreSQL and SQLite. Follows the API keys (0003).
- `decisions.features` (nullable JSON, plain `json` on PostgreSQL rather than JSONB: nothing queries
  inside it, and text keeps the array as compact as it was written): the validated customer feature
  values, a JSON array in the order of the catalogue's feature schema;
- `decisions.feature_schema` (nullable text): the version (hash) of that schema.
Both are NULL for every decision recorded before: no snapshot was kept then, and none can be made up
(training leaves those decisions out). Adding nullable columns without a default rewrites nothing on
PostgreSQL; SQLite's ADD COLUMN is in place as well, so no batch copy is needed.

Downgrade drops both columns (the snapshots are lost: that is what going below 0004 means).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decisions", sa.Column("features", sa.JSON(), nullable=True))
    op.add_column("decisions", sa.Column("feature_schema", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("feature_schema")
        batch.drop_column("features")
