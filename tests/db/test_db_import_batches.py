"""Large imports go in batches (issue 17): saves go on meanwhile, and the import stays all or nothing.

An import used to be one write transaction: 96,000 qrels rows held the write
lock for nine minutes and a reviewer's save waited, then failed. Now the rows
are staged in short transactions and published at once (``db/staging.py``).
No wall-clock thresholds here (the machine may be slow): the tests check the
order in which things commit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import db
from db.models import StagedImport, StagedJudgment
from rrra_core.runtime.errors import DataError

N_QUERIES, N_DOCS = 150, 200  # 30,000 pairs
BATCH = 2000


def _register(session: Session, n_queries: int, n_docs: int) -> tuple[list[str], list[str]]:
    queries = [f"q{i}" for i in range(n_queries)]
    docs = [f"d{i}" for i in range(n_docs)]
    db.register_dataset(session, "big", queries, docs)
    return queries, docs


def _qrels(path: Path, queries: list[str], docs: list[str], flip: int = 0) -> Path:
    """A BEIR qrels file judging every pair; ``flip`` > 0 turns every flip-th grade over."""
    lines = ["query-id\tcorpus-id\tscore"]
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            grade = (i + j) % 2
            if flip and j % flip == 0:
                grade = 1 - grade
            lines.append(f"{q}\t{d}\t{grade}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _staged(session: Session) -> tuple[int, int]:
    session.rollback()  # a fresh snapshot
    return (
        session.scalar(select(func.count()).select_from(StagedImport)) or 0,
        session.scalar(select(func.count()).select_from(StagedJudgment)) or 0,
    )


def _imported(session: Session) -> tuple[int, int, int]:
    """(judgments, distinct pairs, events) of the importing annotator."""
    rows = db.list_judgments(session, "big", annotator="assessor")
    events = db.list_events(session, "big", annotator="assessor")
    return len(rows), len({(r.query_id, r.doc_id) for r in rows}), len(events)


def test_saves_commit_while_a_large_import_runs(db_url: str, session: Session, tmp_path: Path) -> None:
    queries, docs = _register(session, N_QUERIES, N_DOCS)
    path = _qrels(tmp_path / "big.tsv", queries, docs)
    total = N_QUERIES * N_DOCS
    log: list[tuple[str, int]] = []  # what committed, in order
    lock = threading.Lock()
    result: dict[str, object] = {}
    done = threading.Event()

    def note(kind: str, n: int) -> None:
        with lock:
            log.append((kind, n))

    def run_import() -> None:
        engine = db.make_engine(db_url)  # its own engine and connections, as a CLI import in another process
        try:
            with db.session_factory(engine)() as s:
                result["summary"] = db.import_qrels(
                    s, "big", path, "assessor", batch_rows=BATCH, progress=lambda staged, _: note("batch", staged)
                )
        except BaseException as err:  # reported by the main thread
            result["error"] = err
        finally:
            engine.dispose()
            done.set()

    importer = threading.Thread(target=run_import)
    importer.start()
    saves, longest = 0, 0.0
    while not done.is_set():
        started = time.monotonic()
        db.save_judgment(session, "big", queries[saves % N_QUERIES], docs[saves % N_DOCS], "relevant", "reviewer")
        longest = max(longest, time.monotonic() - started)
        note("save", saves)
        saves += 1
        time.sleep(0.005)  # a person's pace, roughly; leaves the importer the CPU
    importer.join()
    assert "error" not in result, result["error"]
    assert result["summary"] == db.ImportSummary(total, total)

    batches = [i for i, (kind, _) in enumerate(log) if kind == "batch"]
    assert [log[i][1] for i in batches] == list(range(BATCH, total + 1, BATCH))
    # Saves committed between the import's batches, not all after it: the import never held the lock throughout.
    during = [n for kind, n in log[batches[0] : batches[-1]] if kind == "save"]
    assert during, f"no save committed while the import was staging ({saves} saves, longest {longest:.2f}s)"

    # Everything arrived exactly once, the reviewer's saves too, and the staging tables are empty again.
    assert _imported(session) == (total, total, total)
    assert len(db.list_events(session, "big", annotator="reviewer")) == saves
    assert _staged(session) == (0, 0)


class _Interrupted(Exception):
    pass


def test_an_interrupted_import_shows_nothing_and_a_rerun_finishes_it(session: Session, tmp_path: Path) -> None:
    queries, docs = _register(session, 40, 50)
    path = _qrels(tmp_path / "qrels.tsv", queries, docs)
    total, batch = 2000, 300

    def stop_after_three(staged: int, _total: int) -> None:
        if staged >= 3 * batch:
            raise _Interrupted  # as a crash or Ctrl-C after three committed batches

    with pytest.raises(_Interrupted):
        db.import_qrels(session, "big", path, "assessor", batch_rows=batch, progress=stop_after_three)
    assert _imported(session) == (0, 0, 0)  # nothing of it is visible
    assert _staged(session) == (1, 3 * batch)

    seen: list[int] = []
    summary = db.import_qrels(session, "big", path, "assessor", batch_rows=batch, progress=lambda s, _: seen.append(s))
    assert seen[0] == 4 * batch  # picked up after the three staged batches
    assert seen[-1] == total
    assert summary == db.ImportSummary(total, total)
    assert _imported(session) == (total, total, total)
    assert _staged(session) == (0, 0)

    # The same file again changes nothing; a file with some grades turned over changes just those.
    assert db.import_qrels(session, "big", path, "assessor", batch_rows=batch) == db.ImportSummary(total, 0)
    flipped = _qrels(tmp_path / "flipped.tsv", queries, docs, flip=5)
    assert db.import_qrels(session, "big", flipped, "assessor", batch_rows=batch) == db.ImportSummary(total, 400)
    last = db.list_events(session, "big", annotator="assessor", limit=400)
    assert all(e.action == "import" and e.old_label != e.new_label for e in last)
    assert all(e.previous is not None and e.previous["label"] == e.old_label for e in last)
    assert _imported(session) == (total, total, total + 400)
    assert _staged(session) == (0, 0)


def test_a_bad_row_in_a_large_file_writes_nothing(session: Session, tmp_path: Path) -> None:
    queries, docs = _register(session, 40, 50)
    path = _qrels(tmp_path / "qrels.tsv", queries, docs)
    with path.open("a", encoding="utf-8") as f:
        f.write("q1\tnot-a-doc\t1\n")
    with pytest.raises(DataError, match="unknown doc id 'not-a-doc'"):
        db.import_qrels(session, "big", path, "assessor", batch_rows=300)
    assert _imported(session) == (0, 0, 0)
    assert _staged(session) == (0, 0)
