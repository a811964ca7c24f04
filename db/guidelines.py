"""Labelling guidelines: one editable text per dataset, shown beside the review queue.

Kept with the dataset in the store (not in a file beside the app) so that
every annotator of a team's PostgreSQL store reads the same rules, and a
dataset's rules travel with its judgments. The table is ``guidelines``
(revision 0006): one row per dataset, replaced on every save.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .datasets import require_dataset
from .engine import write_transaction
from .errors import AnnotationError
from .models import ANNOTATOR_LEN, Base, UTCDateTime, utcnow

__all__ = ["Guidelines", "GUIDELINES_MAX_CHARS", "get_guidelines", "save_guidelines"]

#: Long enough for a few pages of rules; a paste of a whole corpus by mistake is refused.
GUIDELINES_MAX_CHARS = 20_000


class Guidelines(Base):
    """The current labelling guidelines of one dataset."""

    __tablename__ = "guidelines"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str | None] = mapped_column(String(ANNOTATOR_LEN))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


def get_guidelines(session: Session, dataset: str) -> Guidelines | None:
    """Dataset ``dataset``'s guidelines, or ``None`` before anyone wrote them."""
    ds = require_dataset(session, dataset)
    return session.scalars(select(Guidelines).where(Guidelines.dataset_id == ds.id)).one_or_none()


def save_guidelines(session: Session, dataset: str, text: str, annotator: str | None = None) -> Guidelines:
    """Replace dataset ``dataset``'s guidelines with ``text``; commits."""
    if not isinstance(text, str):
        raise AnnotationError("guidelines must be text")
    if len(text) > GUIDELINES_MAX_CHARS:
        raise AnnotationError(f"guidelines longer than {GUIDELINES_MAX_CHARS:,} characters ({len(text):,})")
    if annotator is not None and len(annotator) > ANNOTATOR_LEN:
        raise AnnotationError(f"annotator name longer than {ANNOTATOR_LEN} characters")

    def work() -> Guidelines:
        row = get_guidelines(session, dataset)
        if row is None:
            row = Guidelines(dataset_id=require_dataset(session, dataset).id)
            session.add(row)
        row.text, row.updated_by, row.updated_at = text, annotator, utcnow()
        return row

    return write_transaction(session, work)
