"""Covering indexes on ``judgments`` for the reads at a million judgments (issue 27 item 6).

* ``(dataset_id, query_id, doc_id, annotator, label)``: every per-pair read
  (judged pairs, vote counts, disputed pairs, agreement's self-join) is a scan
  of this index alone, in pair order, never a lookup of each row;
* ``(dataset_id, annotator, label, query_id, doc_id)`` replaces
  ``(dataset_id, annotator)``, of which it is an extension: per-annotator
  counts and one annotator's pairs read it alone.

Indexes only: no row changes, so no batch copy on SQLite. Downgrading drops
them and restores the old index.

Revision ID: 0009
Revises: 0008
Create Date: 2025-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BY_PAIR = ["dataset_id", "query_id", "doc_id", "annotator", "label"]
_BY_ANNOTATOR = ["dataset_id", "annotator", "label", "query_id", "doc_id"]


def _name(columns: list[str]) -> str:
    return "ix_judgments_" + "_".join(columns)


def upgrade() -> None:
    op.create_index(_name(_BY_PAIR), "judgments", _BY_PAIR)
    op.create_index(_name(_BY_ANNOTATOR), "judgments", _BY_ANNOTATOR)
    op.drop_index("ix_judgments_dataset_id_annotator", table_name="judgments")


def downgrade() -> None:
    op.create_index("ix_judgments_dataset_id_annotator", "judgments", ["dataset_id", "annotator"])
    op.drop_index(_name(_BY_ANNOTATOR), table_name="judgments")
    op.drop_index(_name(_BY_PAIR), table_name="judgments")
