"""The review-queue model version that showed a judged pair.

Judgments and events gain ``queue_version`` (e.g. ``v0003``: the learnt
queue's version in ``runs/<id>/review/`` whose order put the pair in front
of the reviewer), null for rows judged before and for pairs no learnt model
ordered. It is part of the model view, so an undo restores it too.

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("judgments", "judgment_events")


def upgrade() -> None:
    # A nullable column without constraints: a plain ALTER TABLE on both backends, no table copy.
    for table in _TABLES:
        op.add_column(table, sa.Column("queue_version", sa.String(32), nullable=True))


def downgrade() -> None:
    # SQLite (3.35+) drops a plain column in place. A batch copy would have to drop judgment_events,
    # which an undo's reverts_event_id refers to, and SQLite refuses that with foreign keys on.
    for table in reversed(_TABLES):
        op.drop_column(table, "queue_version")
