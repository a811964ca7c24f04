"""Initial schema: datasets with their ids, judgments, and the event history.

Revision ID: 0001
Revises:
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: a migration must keep creating what it created, whatever the models become.
_UTC = sa.DateTime()
_EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("n_queries", sa.Integer(), nullable=False),
        sa.Column("n_docs", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "dataset_queries",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_dataset_queries_dataset_id_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_id", "query_id", name="pk_dataset_queries"),
    )
    op.create_table(
        "dataset_docs",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_dataset_docs_dataset_id_datasets", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("dataset_id", "doc_id", name="pk_dataset_docs"),
    )
    op.create_table(
        "judgments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_judgments_dataset_id_datasets"),
        sa.ForeignKeyConstraint(
            ["dataset_id", "query_id"],
            ["dataset_queries.dataset_id", "dataset_queries.query_id"],
            name="fk_judgments_dataset_id_query_id_dataset_queries",
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id", "doc_id"],
            ["dataset_docs.dataset_id", "dataset_docs.doc_id"],
            name="fk_judgments_dataset_id_doc_id_dataset_docs",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_judgments"),
        sa.UniqueConstraint(
            "dataset_id", "query_id", "doc_id", "annotator", name="uq_judgments_dataset_id_query_id_doc_id_annotator"
        ),
    )
    op.create_index("ix_judgments_dataset_id_annotator", "judgments", ["dataset_id", "annotator"])
    op.create_table(
        "judgment_events",
        sa.Column("id", _EVENT_ID, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(200), nullable=False),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("old_label", sa.String(16), nullable=True),
        sa.Column("new_label", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("previous", sa.JSON(), nullable=True),
        sa.Column("reverts_event_id", _EVENT_ID, nullable=True),
        sa.CheckConstraint("action IN ('save', 'undo', 'import')", name="ck_judgment_events_action"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name="fk_judgment_events_dataset_id_datasets"),
        sa.ForeignKeyConstraint(
            ["reverts_event_id"], ["judgment_events.id"], name="fk_judgment_events_reverts_event_id_judgment_events"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_judgment_events"),
        sa.UniqueConstraint("reverts_event_id", name="uq_judgment_events_reverts_event_id"),
    )
    op.create_index(
        "ix_judgment_events_dataset_id_annotator_action", "judgment_events", ["dataset_id", "annotator", "action"]
    )
    op.create_index(
        "ix_judgment_events_dataset_id_query_id_doc_id", "judgment_events", ["dataset_id", "query_id", "doc_id"]
    )


def downgrade() -> None:
    op.drop_table("judgment_events")
    op.drop_table("judgments")
    op.drop_table("dataset_docs")
    op.drop_table("dataset_queries")
    op.drop_table("datasets")
