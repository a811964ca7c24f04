"""Reliability: simultaneous writers lose nothing, and a killed writer leaves no partial batch.

Writers are real processes (forked, each with its own engine), as the app and
a CLI import, or two people's app sessions, would be.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import defaultdict

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

import db

SAVES_PER_WRITER = 500
TOY_QUERIES = [f"q{i}" for i in range(1, 7)]  # the ids of conftest's toy dataset
TOY_DOCS = [f"d{i}" for i in range(1, 21)]
LABELS = ("relevant", "not_relevant", "unsure")
_fork = mp.get_context("fork")


def _plan(worker: int) -> list[tuple[str, str, str, str]]:
    """A writer's saves: half on keys both writers share (same annotator), half on its own annotator's keys."""
    out = []
    for i in range(SAVES_PER_WRITER):
        if i % 2 == 0:  # four hot keys both writers hammer at the same moments
            k = (i // 2) % 4
            q, d, annotator = TOY_QUERIES[k % 2], TOY_DOCS[k], "shared"
        else:
            q, d, annotator = TOY_QUERIES[i % 3], TOY_DOCS[(i * 7) % 8], f"writer{worker}"
        out.append((q, d, LABELS[(i + worker) % 3], annotator))
    return out


def _writer(url: str, worker: int, start: mp.synchronize.Event) -> None:
    engine = db.make_engine(url)
    session = db.session_factory(engine)()
    start.wait(30)
    for q, d, label, annotator in _plan(worker):
        db.save_judgment(session, "toy", q, d, label, annotator, model_view={"rank": worker})
    session.close()
    engine.dispose()


def test_two_writer_processes_lose_nothing(db_url: str, session: Session, toy: str) -> None:
    start = _fork.Event()
    procs = [_fork.Process(target=_writer, args=(db_url, w, start)) for w in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0, 0]

    events = db.list_events(session, toy)
    assert len(events) == 2 * SAVES_PER_WRITER  # every save left exactly one event
    assert [e.id for e in events] == sorted({e.id for e in events})

    # The history of each key is one unbroken chain: each change starts from the previous one's result,
    # which is what a lost update would break.
    by_key: dict[tuple[str, str, str], list] = defaultdict(list)
    for e in events:
        by_key[(e.query_id, e.doc_id, e.annotator)].append(e)
    final = {(j.query_id, j.doc_id, j.annotator): j.label for j in db.list_judgments(session, toy)}
    assert set(final) == set(by_key)
    for key, chain in by_key.items():
        assert chain[0].old_label is None
        assert all(b.old_label == a.new_label for a, b in zip(chain, chain[1:])), key
        assert final[key] == chain[-1].new_label

    # Each writer's own keys end with that writer's last word; shared ones with whoever saved last.
    for worker in (1, 2):
        mine = [(q, d, label, who) for q, d, label, who in _plan(worker) if who != "shared"]
        last = {(q, d, who): label for q, d, label, who in mine}
        assert {k: final[k] for k in last} == last
        assert sum(1 for e in events if e.annotator == f"writer{worker}") == len(mine)
    assert sum(1 for e in events if e.annotator == "shared") == 2 * (SAVES_PER_WRITER // 2)


BATCH = [
    {"query_id": q, "doc_id": d, "label": "relevant", "annotator": "crasher"} for q in TOY_QUERIES for d in TOY_DOCS
]


def _crashing_writer(url: str, halfway: mp.synchronize.Event) -> None:
    engine = db.make_engine(url)
    seen = {"events": 0}

    @event.listens_for(engine, "after_cursor_execute")
    def _count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        if statement.startswith("INSERT INTO judgment_events"):
            seen["events"] += 1
            if seen["events"] == len(BATCH) // 2:
                halfway.set()
                time.sleep(120)  # killed here, in the middle of the batch's transaction

    db.save_judgments(db.session_factory(engine)(), "toy", BATCH)


def test_a_writer_killed_mid_batch_leaves_nothing_of_it(db_url: str, session: Session, toy: str) -> None:
    db.save_judgment(session, toy, "q1", "d1", "not_relevant", "crasher")  # committed before: must survive
    halfway = _fork.Event()
    proc = _fork.Process(target=_crashing_writer, args=(db_url, halfway))
    proc.start()
    assert halfway.wait(60), "the writer never got half-way"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL

    # A fresh engine, as after a restart: the half batch is gone, the earlier save is intact.
    engine = db.init_db(db_url)
    try:
        with db.session_factory(engine)() as fresh:
            rows = db.list_judgments(fresh, toy, annotator="crasher")
            assert [(j.query_id, j.doc_id, j.label) for j in rows] == [("q1", "d1", "not_relevant")]
            assert len(db.list_events(fresh, toy)) == 1
            # The store still works (on PostgreSQL the dead client's row locks are released).
            deadline = time.monotonic() + 30
            while True:
                try:
                    db.save_judgments(fresh, toy, BATCH)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            assert len(db.list_judgments(fresh, toy, annotator="crasher")) == len(BATCH)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_reader_is_not_blocked_by_an_open_write(db_url: str, session: Session, toy: str) -> None:
    # WAL: the app keeps reading while an import holds the write lock.
    engine = db.make_engine(db_url)
    try:
        with engine.connect().execution_options(rrra_sqlite_begin="IMMEDIATE") as writer, writer.begin():
            started = time.monotonic()
            assert db.list_judgments(session, toy) == []
            assert time.monotonic() - started < 5
    finally:
        engine.dispose()
