"""Labelling guidelines per dataset.

``guidelines`` is new: one row per dataset (its primary key is the dataset's
id, deleted with it) holding the text the review queue shows beside each item,
who last edited it and when.

Revision ID: 0006
Revises: 0005
Create Date: 2025-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A new table only: no existing row is touched, so no batch copy on SQLite.
    op.create_table(
        "guidelines",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_guidelines_dataset_id_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_id", name="pk_guidelines"),
    )


def downgrade() -> None:
    op.drop_table("guidelines")
