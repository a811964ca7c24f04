"""Staged imports: a large import is written in short batches, then published at once.

``staged_imports`` (one row per import under way: its id, a hash of the
dataset and the rows; how many rows it has and how many are staged) and
``staged_judgments`` (the checked rows, numbered in key order). Only the
import reads them; they are emptied when the import is published.

Revision ID: 0007
Revises: 0006
Create Date: 2025-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # New tables only: no existing row is touched, so no batch copy on SQLite.
    op.create_table(
        "staged_imports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("staged", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_staged_imports_dataset_id_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_staged_imports"),
    )
    op.create_table(
        "staged_judgments",
        sa.Column("import_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("has_view", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=True),
        sa.Column("p_tp", sa.Float(), nullable=True),
        sa.Column("p_fn", sa.Float(), nullable=True),
        sa.Column("p_fp", sa.Float(), nullable=True),
        sa.Column("p_tn", sa.Float(), nullable=True),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("queue_version", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["staged_imports.id"],
            name="fk_staged_judgments_import_id_staged_imports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("import_id", "seq", name="pk_staged_judgments"),
    )


def downgrade() -> None:
    # Dropping an import under way only loses its staged copy: nothing of it was visible yet.
    op.drop_table("staged_judgments")
    op.drop_table("staged_imports")
