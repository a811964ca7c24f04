"""The model's view at judging time, a label check, and training jobs.

Judgments and events gain the run id, the four class probabilities and the
retriever rank and score (null for rows judged before). ``judgments.label``
gains a CHECK constraint (SQLite copies the table to add it; rows are kept).
``training_jobs`` is new.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MODEL_VIEW = (
    ("run_id", sa.String(200)),
    ("p_tp", sa.Float()),
    ("p_fn", sa.Float()),
    ("p_fp", sa.Float()),
    ("p_tn", sa.Float()),
    ("rank", sa.Integer()),
    ("score", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("judgments", recreate="auto") as batch:
        for name, type_ in _MODEL_VIEW:
            batch.add_column(sa.Column(name, type_, nullable=True))
        batch.create_check_constraint("ck_judgments_label", "label IN ('relevant', 'not_relevant', 'unsure')")
    with op.batch_alter_table("judgment_events") as batch:
        for name, type_ in _MODEL_VIEW:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("phase", sa.String(32), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="ck_training_jobs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_training_jobs"),
        sa.UniqueConstraint("run_id", name="uq_training_jobs_run_id"),
    )


def downgrade() -> None:
    op.drop_table("training_jobs")
    with op.batch_alter_table("judgment_events") as batch:
        for name, _ in reversed(_MODEL_VIEW):
            batch.drop_column(name)
    with op.batch_alter_table("judgments") as batch:
        batch.drop_constraint("ck_judgments_label", type_="check")
        for name, _ in reversed(_MODEL_VIEW):
            batch.drop_column(name)
