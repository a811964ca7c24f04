"""The annotation store's tables, as SQLAlchemy 2.0 models.

* ``datasets`` with the query and document ids each one knows
  (``dataset_queries``, ``dataset_docs``): judgments are checked against these
  ids, and composite foreign keys make the database itself refuse an unknown id.
* ``judgments``: the current verdict per (dataset, query, doc, annotator);
  the unique key makes saving again an update.
* ``judgment_events``: append-only history of every change, undo included.
* ``adjudications``: one settled verdict per (dataset, query, doc) where
  annotators disagreed; it overrides every merge policy (revision 0005).
* ``staged_imports`` and ``staged_judgments``: a large import's rows waiting,
  batch by batch, to be published in one short transaction (revision 0007,
  ``db/staging.py``). Nothing reads them but the import itself.
* Revision 0009 adds covering indexes on ``judgments`` (by pair, by annotator)
  so the reads at a million judgments scan an index, not the rows.

Training jobs are not here: a retrain's progress and outcome live in its run
folders, which the app reads (revision 0003 dropped the old ``training_jobs``).

Timestamps are stored as naive UTC and come back timezone-aware (UTC), the
same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "LABELS",
    "EVENT_ACTIONS",
    "MODEL_VIEW_FIELDS",
    "Base",
    "StoredDataset",
    "StoredQuery",
    "StoredDoc",
    "Judgment",
    "JudgmentEvent",
    "Adjudication",
    "StagedImport",
    "StagedJudgment",
    "utcnow",
]

#: The verdicts a person can give; ``unsure`` is kept but never changes training labels.
LABELS = ("relevant", "not_relevant", "unsure")
#: ``save`` (a person, undoable), ``undo``, ``import`` (a file; not undoable one by one).
EVENT_ACTIONS = ("save", "undo", "import")
#: The model's view of a pair when it was judged: run, the four class probabilities, retriever rank and score,
#: and the review-queue model version whose order showed it (``v0003``; revision 0004).
MODEL_VIEW_FIELDS = ("run_id", "p_tp", "p_fn", "p_fp", "p_tn", "rank", "score", "queue_version")

ID_LEN = 200  # query, doc and run ids
NAME_LEN = 200  # dataset names
ANNOTATOR_LEN = 100
VERSION_LEN = 32  # review-queue model versions
IMPORT_ID_LEN = 64  # a SHA-256 in hex


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (what every timestamp column holds)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and returned aware, so both backends agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    # Named constraints, so Alembic can alter them on SQLite (batch mode) too.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


# SQLite only makes INTEGER PRIMARY KEY an auto-increment row id.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class StoredDataset(Base):
    """A collection whose query and document ids the store knows."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LEN), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    n_queries: Mapped[int] = mapped_column(Integer, default=0)
    n_docs: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"StoredDataset(name={self.name!r}, n_queries={self.n_queries}, n_docs={self.n_docs})"


class StoredQuery(Base):
    __tablename__ = "dataset_queries"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    query_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)


class StoredDoc(Base):
    __tablename__ = "dataset_docs"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)


class Judgment(Base):
    """One annotator's current verdict on one (query, doc) pair, with the model's view then."""

    __tablename__ = "judgments"
    __table_args__ = (
        UniqueConstraint("dataset_id", "query_id", "doc_id", "annotator"),
        ForeignKeyConstraint(["dataset_id", "query_id"], ["dataset_queries.dataset_id", "dataset_queries.query_id"]),
        ForeignKeyConstraint(["dataset_id", "doc_id"], ["dataset_docs.dataset_id", "dataset_docs.doc_id"]),
        CheckConstraint(f"label IN ({_in(LABELS)})", name="label"),
        # Covering indexes (revision 0009): per-pair and per-annotator reads never visit the table's rows.
        Index(None, "dataset_id", "query_id", "doc_id", "annotator", "label"),
        Index(None, "dataset_id", "annotator", "label", "query_id", "doc_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    query_id: Mapped[str] = mapped_column(String(ID_LEN))
    doc_id: Mapped[str] = mapped_column(String(ID_LEN))
    annotator: Mapped[str] = mapped_column(String(ANNOTATOR_LEN))
    label: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    p_tp: Mapped[float | None] = mapped_column(Float)
    p_fn: Mapped[float | None] = mapped_column(Float)
    p_fp: Mapped[float | None] = mapped_column(Float)
    p_tn: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    queue_version: Mapped[str | None] = mapped_column(String(VERSION_LEN))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Eager, so a judgment read in one session still knows its dataset's name after it closes.
    dataset: Mapped[StoredDataset] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    @property
    def dataset_name(self) -> str:
        return self.dataset.name

    def state(self) -> dict[str, Any]:
        """The judgment's editable state as plain JSON values (what an event keeps to undo to)."""
        out: dict[str, Any] = {"label": self.label, "note": self.note}
        out.update({f: getattr(self, f) for f in MODEL_VIEW_FIELDS})
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        return out

    def __repr__(self) -> str:
        return f"Judgment({self.query_id!r}, {self.doc_id!r}, {self.label!r}, annotator={self.annotator!r})"


class JudgmentEvent(Base):
    """One change to a judgment: never updated, never deleted."""

    __tablename__ = "judgment_events"
    __table_args__ = (
        CheckConstraint(f"action IN ({_in(EVENT_ACTIONS)})", name="action"),
        Index(None, "dataset_id", "annotator", "action"),
        Index(None, "dataset_id", "query_id", "doc_id"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    query_id: Mapped[str] = mapped_column(String(ID_LEN))
    doc_id: Mapped[str] = mapped_column(String(ID_LEN))
    annotator: Mapped[str] = mapped_column(String(ANNOTATOR_LEN))
    action: Mapped[str] = mapped_column(String(16))
    #: ``None`` as old label: the judgment was created; as new label: it was deleted (an undone first save).
    old_label: Mapped[str | None] = mapped_column(String(16))
    new_label: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    #: The whole judgment before this change (``Judgment.state()``), or ``None`` if there was none.
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: For an undo: the save it reverts. Unique, so two racing undos cannot revert the same save.
    reverts_event_id: Mapped[int | None] = mapped_column(ForeignKey("judgment_events.id"), unique=True)
    run_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    p_tp: Mapped[float | None] = mapped_column(Float)
    p_fn: Mapped[float | None] = mapped_column(Float)
    p_fp: Mapped[float | None] = mapped_column(Float)
    p_tn: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    queue_version: Mapped[str | None] = mapped_column(String(VERSION_LEN))

    dataset: Mapped[StoredDataset] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    @property
    def dataset_name(self) -> str:
        return self.dataset.name

    def __repr__(self) -> str:
        return (
            f"JudgmentEvent({self.id}, {self.action}, {self.query_id!r}, {self.doc_id!r}, "
            f"{self.old_label!r} -> {self.new_label!r}, annotator={self.annotator!r})"
        )


class Adjudication(Base):
    """The settled verdict on one (query, doc) pair, recorded by an adjudicator; saving again replaces it.

    Keyed by dataset, query and doc (not by person): a pair has one settled
    verdict, whoever recorded it last. ``unsure`` settles a pair as undecided.
    """

    __tablename__ = "adjudications"
    __table_args__ = (
        UniqueConstraint("dataset_id", "query_id", "doc_id"),
        ForeignKeyConstraint(["dataset_id", "query_id"], ["dataset_queries.dataset_id", "dataset_queries.query_id"]),
        ForeignKeyConstraint(["dataset_id", "doc_id"], ["dataset_docs.dataset_id", "dataset_docs.doc_id"]),
        CheckConstraint(f"verdict IN ({_in(LABELS)})", name="verdict"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    query_id: Mapped[str] = mapped_column(String(ID_LEN))
    doc_id: Mapped[str] = mapped_column(String(ID_LEN))
    verdict: Mapped[str] = mapped_column(String(16))
    adjudicator: Mapped[str] = mapped_column(String(ANNOTATOR_LEN))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def __repr__(self) -> str:
        return f"Adjudication({self.query_id!r}, {self.doc_id!r}, {self.verdict!r}, by={self.adjudicator!r})"


class StagedImport(Base):
    """A large import under way: how many of its rows are staged so far (see ``db/staging.py``).

    The id is a hash of the dataset and the checked rows, so running the same
    import again finds this row and carries on where the last attempt stopped.
    Deleted, with its staged rows, when the import is published.
    """

    __tablename__ = "staged_imports"

    id: Mapped[str] = mapped_column(String(IMPORT_ID_LEN), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    total: Mapped[int] = mapped_column(Integer)
    staged: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StagedJudgment(Base):
    """One checked row of a staged import, in the import's key order (``seq``); invisible to every reader.

    No foreign keys on the ids: they were checked before staging, and the
    ``judgments`` table's own keys check them again when the row is published.
    """

    __tablename__ = "staged_judgments"

    import_id: Mapped[str] = mapped_column(ForeignKey("staged_imports.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(String(ID_LEN))
    doc_id: Mapped[str] = mapped_column(String(ID_LEN))
    annotator: Mapped[str] = mapped_column(String(ANNOTATOR_LEN))
    label: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    #: Whether the row carries a model view; a row without one keeps the view already recorded.
    has_view: Mapped[bool] = mapped_column(Boolean)
    run_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    p_tp: Mapped[float | None] = mapped_column(Float)
    p_fn: Mapped[float | None] = mapped_column(Float)
    p_fp: Mapped[float | None] = mapped_column(Float)
    p_tn: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    queue_version: Mapped[str | None] = mapped_column(String(VERSION_LEN))
    #: The file's timestamps (exported judgments); null means "the time of publishing".
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
