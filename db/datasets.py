"""Datasets the store knows, and the id checks every write goes through.

Registering a dataset stores its query and document ids in the database
(``dataset_queries``, ``dataset_docs``). A save then checks its ids with
primary-key lookups: fast for repeated saves, correct across processes and
machines (a team's PostgreSQL), and the composite foreign keys on
``judgments`` make the database refuse an unknown id even if a caller skips
this module. Loading a corpus happens once per database, at registration,
not once per process.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rrra_core.data import dataset_folder, load_corpus, load_queries, resolve_data_file
from rrra_core.runtime.paths import DEMO_DATASETS

from .engine import write_transaction
from .errors import AnnotationError
from .models import ID_LEN, NAME_LEN, StoredDataset, StoredDoc, StoredQuery

__all__ = ["register_dataset", "ensure_dataset", "get_dataset", "require_dataset", "list_datasets", "check_ids"]

_CHUNK = 500  # ids per IN (...) query; well under every backend's parameter limit
_INSERT_CHUNK = 10_000


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def get_dataset(session: Session, name: str) -> StoredDataset | None:
    """The registered dataset called ``name``, or ``None``."""
    return session.scalars(select(StoredDataset).where(StoredDataset.name == name)).one_or_none()


def require_dataset(session: Session, name: str) -> StoredDataset:
    """The registered dataset called ``name``; an ``AnnotationError`` if there is none."""
    found = get_dataset(session, name)
    if found is None:
        raise AnnotationError(f"unknown dataset {name!r}: register it first (db.ensure_dataset)")
    return found


def list_datasets(session: Session) -> list[StoredDataset]:
    """Every registered dataset, by name."""
    return list(session.scalars(select(StoredDataset).order_by(StoredDataset.name)))


def _existing(session: Session, model: type[StoredQuery] | type[StoredDoc], dataset_id: int) -> set[str]:
    column = model.query_id if model is StoredQuery else model.doc_id  # type: ignore[union-attr]
    return set(session.scalars(select(column).where(model.dataset_id == dataset_id)))


def _add_ids(
    session: Session, model: type[StoredQuery] | type[StoredDoc], dataset_id: int, ids: Collection[str]
) -> int:
    key = "query_id" if model is StoredQuery else "doc_id"
    new = sorted(set(ids) - _existing(session, model, dataset_id))
    for chunk in _chunks(new, _INSERT_CHUNK):
        session.execute(insert(model), [{"dataset_id": dataset_id, key: i} for i in chunk])
    return len(new)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AnnotationError("a dataset name must be a non-empty string")
    if len(name) > NAME_LEN:
        raise AnnotationError(f"dataset name longer than {NAME_LEN} characters: {name[:40]!r}...")
    return name


def register_dataset(
    session: Session,
    name: str,
    query_ids: Collection[str],
    doc_ids: Collection[str],
    *,
    source: str | None = None,
) -> StoredDataset:
    """Record (or extend) dataset ``name`` with its query and document ids; commits.

    Registering again adds any new ids and never removes one, since judgments
    may refer to it. ``source`` says where the ids came from (a folder).
    """
    _check_name(name)
    for ident in (*query_ids, *doc_ids):
        if not isinstance(ident, str) or not ident or len(ident) > ID_LEN:
            raise AnnotationError(
                f"dataset {name!r}: ids must be strings of 1 to {ID_LEN} characters, found {str(ident)[:60]!r}"
            )

    def work() -> StoredDataset:
        row = get_dataset(session, name)
        if row is None:
            row = StoredDataset(name=name, source=source, n_queries=0, n_docs=0)
            session.add(row)
            session.flush()
        _add_ids(session, StoredQuery, row.id, query_ids)
        _add_ids(session, StoredDoc, row.id, doc_ids)
        row.n_queries = len(_existing(session, StoredQuery, row.id))
        row.n_docs = len(_existing(session, StoredDoc, row.id))
        if source is not None:
            row.source = source
        return row

    try:
        return write_transaction(session, work)
    except IntegrityError:
        # Another process registered the same name or ids at the same moment
        # (PostgreSQL); its rows are committed now, so adding ours again is safe.
        return write_transaction(session, work)


def _default_name(name_or_path: str | Path, folder: Path) -> str:
    # The same name rrra_core.data.load_dataset gives (a demo's name, else the folder's).
    key = str(name_or_path)
    return key if key in DEMO_DATASETS else folder.name


def ensure_dataset(session: Session, name_or_path: str | Path, *, name: str | None = None) -> StoredDataset:
    """The registered dataset for a demo name or BEIR folder, registering it on first use.

    The name defaults to what ``rrra_core.data.load_dataset`` calls the
    dataset (the demo name, else the folder name). The first call reads the
    corpus and queries files (seconds for a large corpus); later calls are
    one lookup. A name already registered from another folder is an error,
    since its ids would be the wrong ones; pass ``name=`` to tell them apart.
    """
    folder = dataset_folder(name_or_path).resolve()
    key = _check_name(name if name is not None else _default_name(name_or_path, folder))
    found = get_dataset(session, key)
    if found is not None:
        if found.source is not None and found.source != str(folder):
            raise AnnotationError(
                f"dataset name {key!r} is already registered for {found.source}, not {folder}; choose another name"
            )
        return found
    corpus = load_corpus(resolve_data_file(folder, "corpus"))
    queries, _ = load_queries(resolve_data_file(folder, "queries"))
    return register_dataset(session, key, list(queries), list(corpus), source=str(folder))


def _missing(session: Session, model: type[StoredQuery] | type[StoredDoc], dataset_id: int, ids: set[str]) -> list[str]:
    column = model.query_id if model is StoredQuery else model.doc_id  # type: ignore[union-attr]
    found: set[str] = set()
    for chunk in _chunks(sorted(ids), _CHUNK):
        found.update(session.scalars(select(column).where(model.dataset_id == dataset_id, column.in_(chunk))))
    return sorted(ids - found)


def _unknown_message(kind: str, dataset: str, missing: list[str]) -> str:
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    return f"unknown {kind} id {missing[0]!r} in dataset {dataset!r}{more}"


def check_ids(session: Session, dataset: StoredDataset, query_ids: Iterable[str], doc_ids: Iterable[str]) -> None:
    """Raise ``AnnotationError`` naming the first query or doc id ``dataset`` does not have."""
    missing_q = _missing(session, StoredQuery, dataset.id, set(query_ids))
    if missing_q:
        raise AnnotationError(_unknown_message("query", dataset.name, missing_q))
    missing_d = _missing(session, StoredDoc, dataset.id, set(doc_ids))
    if missing_d:
        raise AnnotationError(_unknown_message("doc", dataset.name, missing_d))
