"""The team's record of who did what beyond verdicts: jobs started and cancelled, roles granted and revoked.

Verdicts, adjudications and guideline edits carry their author in their own
rows; a background job lives in files (``rrra_core.runtime.jobs``), and a role
change replaces the role's row. So those leave an append-only row here
(``audit_events``, revision 0008), under the signed-in name of whoever did it,
on SQLite and PostgreSQL alike. Never updated, never deleted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .engine import write_transaction
from .errors import AnnotationError
from .models import ANNOTATOR_LEN, ID_LEN, Base, EventId, UTCDateTime, utcnow

__all__ = ["AUDIT_ACTIONS", "AuditEvent", "record_action", "list_actions"]

#: What the record holds: a background job started or cancelled, a role granted or revoked.
AUDIT_ACTIONS = ("job_start", "job_cancel", "role_grant", "role_revoke")


class AuditEvent(Base):
    """One action by one person: what (``action``), on what (``subject``: a job id or a person), and details."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("action IN ('job_start', 'job_cancel', 'role_grant', 'role_revoke')", name="action"),
        Index(None, "subject"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    person: Mapped[str] = mapped_column(String(ANNOTATOR_LEN))
    action: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(ID_LEN))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    def __repr__(self) -> str:
        return f"AuditEvent({self.action}, {self.subject!r}, by={self.person!r})"


def record_action(
    session: Session,
    person: str,
    action: str,
    subject: str,
    detail: dict[str, Any] | None = None,
    *,
    commit: bool = True,
) -> AuditEvent:
    """Append ``person`` did ``action`` on ``subject``; commits (``commit=False``: inside the caller's transaction)."""
    if action not in AUDIT_ACTIONS:
        raise AnnotationError(f"unknown action {action!r}; one of {', '.join(AUDIT_ACTIONS)}")
    if not person or len(person) > ANNOTATOR_LEN:
        raise AnnotationError(f"an action needs its person's name (at most {ANNOTATOR_LEN} characters)")
    if not subject or len(subject) > ID_LEN:
        raise AnnotationError(f"an action needs its subject (at most {ID_LEN} characters)")

    def work() -> AuditEvent:
        row = AuditEvent(created_at=utcnow(), person=person, action=action, subject=subject, detail=detail)
        session.add(row)
        session.flush()
        return row

    return write_transaction(session, work) if commit else work()


def list_actions(session: Session, *, subject: str | None = None, action: str | None = None) -> list[AuditEvent]:
    """The record, oldest first, optionally of one subject or one action."""
    stmt = select(AuditEvent).order_by(AuditEvent.id)
    if subject is not None:
        stmt = stmt.where(AuditEvent.subject == subject)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.scalars(stmt))
