"""Team mode: people's roles, and the record of who started or cancelled jobs and changed roles.

``roles`` (one row per signed-in person: annotator, adjudicator or admin; who
granted it and when) and ``audit_events`` (append-only: a job started or
cancelled, a role granted or revoked, by whom, when). Both new; nothing
existing changes.

Revision ID: 0008
Revises: 0007
Create Date: 2025-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies: a migration must keep creating what it created, whatever the models become.
_EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # New tables only: no existing row is touched, so no batch copy on SQLite.
    op.create_table(
        "roles",
        sa.Column("person", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("granted_by", sa.String(100), nullable=True),
        sa.Column("granted_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('annotator', 'adjudicator', 'admin')", name="ck_roles_role"),
        sa.PrimaryKeyConstraint("person", name="pk_roles"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", _EVENT_ID, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("person", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "action IN ('job_start', 'job_cancel', 'role_grant', 'role_revoke')", name="ck_audit_events_action"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_table("roles")
