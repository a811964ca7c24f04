"""Training jobs as the app follows them.

A retraining run is a separate process; it records its progress here and the
app reads it. One row per run id. Each call is its own short transaction, so
a progress update never waits behind anything but another write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .engine import write_transaction
from .errors import AnnotationError
from .models import JOB_STATUSES, TrainingJob, utcnow

__all__ = [
    "create_training_job",
    "update_training_job",
    "finish_training_job",
    "get_training_job",
    "list_training_jobs",
]

_UPDATABLE = ("status", "progress", "phase", "epoch", "step", "message", "pid")
_FINAL = ("done", "failed", "cancelled")


def _find(session: Session, run_id: str) -> TrainingJob | None:
    return session.scalars(select(TrainingJob).where(TrainingJob.run_id == run_id)).one_or_none()


def _check(fields: dict[str, Any]) -> None:
    status = fields.get("status")
    if status is not None and status not in JOB_STATUSES:
        raise AnnotationError(f"invalid job status {status!r}: use one of {', '.join(JOB_STATUSES)}")
    progress = fields.get("progress")
    if progress is not None and not 0.0 <= float(progress) <= 1.0:
        raise AnnotationError(f"job progress must be in [0, 1], found {progress}")


def create_training_job(
    session: Session,
    run_id: str,
    *,
    status: str = "queued",
    phase: str | None = None,
    pid: int | None = None,
    message: str = "",
) -> TrainingJob:
    """Record a new job for ``run_id`` (an ``AnnotationError`` if one exists); commits."""
    if not run_id or not run_id.strip():
        raise AnnotationError("a training job needs a run id")
    _check({"status": status})

    def work() -> TrainingJob:
        if _find(session, run_id) is not None:
            raise AnnotationError(f"a training job for run {run_id!r} already exists")
        now = utcnow()
        job = TrainingJob(
            run_id=run_id,
            status=status,
            progress=0.0,
            phase=phase,
            pid=pid,
            message=message,
            created_at=now,
            updated_at=now,
            started_at=now if status == "running" else None,
        )
        session.add(job)
        session.flush()
        return job

    return write_transaction(session, work)


def update_training_job(session: Session, run_id: str, **fields: Any) -> TrainingJob:
    """Set any of status, progress (0-1), phase, epoch, step, message, pid; commits.

    Moving to ``running`` stamps ``started_at`` (once).
    """
    unknown = sorted(set(fields) - set(_UPDATABLE))
    if unknown:
        raise AnnotationError(f"cannot set {unknown[0]!r} on a training job; settable: {', '.join(_UPDATABLE)}")
    _check(fields)

    def work() -> TrainingJob:
        job = _find(session, run_id)
        if job is None:
            raise AnnotationError(f"no training job for run {run_id!r}")
        now = utcnow()
        for name, value in fields.items():
            setattr(job, name, value)
        if fields.get("status") == "running" and job.started_at is None:
            job.started_at = now
        job.updated_at = now
        return job

    return write_transaction(session, work)


def finish_training_job(
    session: Session, run_id: str, status: str = "done", *, error: str | None = None, message: str | None = None
) -> TrainingJob:
    """Mark the job ``done``, ``failed`` or ``cancelled``, with its error if any; commits."""
    if status not in _FINAL:
        raise AnnotationError(f"a finished job is {', '.join(_FINAL)}, not {status!r}")

    def work() -> TrainingJob:
        job = _find(session, run_id)
        if job is None:
            raise AnnotationError(f"no training job for run {run_id!r}")
        now = utcnow()
        job.status = status
        job.error = error
        if message is not None:
            job.message = message
        if status == "done":
            job.progress = 1.0
        job.ended_at = now
        job.updated_at = now
        return job

    return write_transaction(session, work)


def get_training_job(session: Session, run_id: str) -> TrainingJob | None:
    """The job of ``run_id``, or ``None``."""
    return _find(session, run_id)


def list_training_jobs(session: Session, *, status: str | None = None, limit: int = 50) -> list[TrainingJob]:
    """The most recent jobs first, optionally only those with ``status``."""
    stmt = select(TrainingJob)
    if status is not None:
        stmt = stmt.where(TrainingJob.status == status)
    return list(session.scalars(stmt.order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc()).limit(limit)))
