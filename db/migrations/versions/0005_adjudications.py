"""Adjudications: the settled verdict on a pair annotators disagreed on.

One row per (dataset, query, doc): the verdict (relevant, not_relevant, or
unsure for "settled as undecided"), who recorded it, a note and when. Every
merge policy takes it over the annotators' votes (``db/merge.py``).

Revision ID: 0005
Revises: 0004
Create Date: 2025-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: a migration must keep creating what it created, whatever the models become.
_UTC = sa.DateTime()


def upgrade() -> None:
    # A new table only: no existing row is touched, so no batch copy on SQLite.
    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("adjudicator", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.CheckConstraint("verdict IN ('relevant', 'not_relevant', 'unsure')", name="ck_adjudications_verdict"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_adjudications_dataset_id_datasets"),
        sa.ForeignKeyConstraint(
            ["dataset_id", "query_id"],
            ["dataset_queries.dataset_id", "dataset_queries.query_id"],
            name="fk_adjudications_dataset_id_query_id_dataset_queries",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id", "doc_id"],
            ["dataset_docs.dataset_id", "dataset_docs.doc_id"],
            name="fk_adjudications_dataset_id_doc_id_dataset_docs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_adjudications"),
        sa.UniqueConstraint("dataset_id", "query_id", "doc_id", name="uq_adjudications_dataset_id_query_id_doc_id"),
    )


def downgrade() -> None:
    op.drop_table("adjudications")
