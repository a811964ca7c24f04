"""Exports and imports: the SciFact round trip, training files, and tasks for Label Studio and Argilla."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

import db
from rrra_core.data import Dataset, load_dataset, load_qrels, read_flag, read_tevatron
from rrra_core.runtime.errors import DataError
from rrra_core.runtime.paths import demo_dataset_dir


@pytest.fixture(scope="module")
def scifact() -> Dataset:
    return load_dataset("scifact", "test")


def _plan(data: Dataset) -> tuple[list[dict], dict[str, dict[str, int]], dict[str, set[str]]]:
    """Judgments on SciFact test, and the corrected labels they must give under the majority policy."""
    queries = sorted(data.qrels)[:6]
    spare = [d for d in sorted(data.corpus) if all(d not in data.qrels[q] for q in queries)]
    rows: list[dict] = []
    expected = {q: dict(docs) for q, docs in data.qrels.items()}
    negatives: dict[str, set[str]] = {}

    def judge(q: str, d: str, *labels: tuple[str, str]) -> None:
        rows.extend(
            {"query_id": q, "doc_id": d, "label": lab, "annotator": who, "note": f"{who} on {q}"} for who, lab in labels
        )

    q0, q1, q2, q3, q4, q5 = queries
    judge(q0, spare[0], ("alice", "relevant"), ("bob", "relevant"))  # a false negative found
    expected[q0][spare[0]] = 1
    pos = sorted(data.qrels[q1])[0]  # a wrong positive: 2 "not relevant" beat the imported "relevant"
    judge(q1, pos, ("alice", "not_relevant"), ("bob", "not_relevant"))
    del expected[q1][pos]
    if not expected[q1]:
        del expected[q1]
    negatives[q1] = {pos}
    judge(q2, spare[1], ("alice", "not_relevant"), ("bob", "unsure"))  # a confirmed negative
    negatives[q2] = {spare[1]}
    judge(q3, spare[2], ("alice", "relevant"), ("bob", "not_relevant"))  # a tie: nothing changes
    judge(q4, spare[3], ("alice", "unsure"))  # unsure: nothing changes
    judge(q5, sorted(data.qrels[q5])[0], ("alice", "relevant"))  # agrees with the qrels
    return rows, expected, negatives


def test_scifact_round_trip(session: Session, new_db_url: Callable[[], str], scifact: Dataset, tmp_path: Path) -> None:
    name = db.ensure_dataset(session, "scifact").name
    qrels_file = demo_dataset_dir("scifact") / "qrels" / "test.tsv"
    n_pairs = sum(len(d) for d in scifact.qrels.values())
    assert db.import_qrels(session, name, qrels_file, "beir-qrels") == db.ImportSummary(n_pairs, n_pairs)
    assert db.import_qrels(session, name, qrels_file, "beir-qrels") == db.ImportSummary(n_pairs, 0)  # idempotent

    rows, expected, expected_negatives = _plan(scifact)
    db.save_judgments(session, name, rows)
    merged = db.merge_labels(session, name, scifact.qrels, "majority")
    qrels, negatives = merged.qrels, merged.confirmed_negatives
    assert qrels == expected and negatives == expected_negatives

    hard = {q: sorted(scifact.corpus)[:3] for q in qrels}
    examples = db.training_examples(scifact.corpus, scifact.all_queries, qrels, negatives, hard, max_negatives=4)
    paths = {
        k: tmp_path / f"out.{k}" for k in ("tsv", "trec", "tevatron.jsonl", "flag.jsonl", "neg.tsv", "judgments.jsonl")
    }
    db.write_beir_qrels(paths["tsv"], qrels)
    db.write_trec_qrels(paths["trec"], qrels)
    db.write_training_file(paths["tevatron.jsonl"], examples, "tevatron")
    db.write_training_file(paths["flag.jsonl"], examples, "flag")
    db.write_confirmed_negatives(paths["neg.tsv"], negatives)
    assert db.export_judgments(session, paths["judgments.jsonl"], name) == n_pairs + len(
        rows
    )  # the imported qrels plus every person's verdict

    # Read back with independent readers: identical contents.
    assert load_qrels(paths["tsv"], corpus_ids=scifact.corpus, query_ids=scifact.all_queries) == qrels
    assert db.read_qrels_file(paths["trec"]) == qrels
    assert read_tevatron(paths["tevatron.jsonl"]) == examples
    flag = read_flag(paths["flag.jsonl"])
    assert [(f.query, len(f.positives), len(f.negatives)) for f in flag] == [
        (e.query, len(e.positives), len(e.negatives)) for e in examples
    ]
    assert "0\n" not in paths["tsv"].read_text() and not any(
        line.endswith(" 0") for line in paths["trec"].read_text().splitlines()
    )
    q1 = next(iter(expected_negatives))
    tev = {e.query_id: e for e in examples}
    if q1 in tev:  # the corrected negative leads the negatives, and is no longer a positive
        assert tev[q1].negatives[0].docid in expected_negatives[q1]
        assert all(p.docid not in expected_negatives[q1] for p in tev[q1].positives)

    # Into a second store: the judgments file re-imports to the same state and re-exports to the same bytes.
    engine = db.init_db(new_db_url())
    try:
        with db.session_factory(engine)() as other:
            db.ensure_dataset(other, "scifact")
            summary = db.import_judgments(other, paths["judgments.jsonl"])
            assert summary.rows == summary.changed == n_pairs + len(rows)
            again = tmp_path / "again.jsonl"
            db.export_judgments(other, again, name)
            assert again.read_bytes() == paths["judgments.jsonl"].read_bytes()
            assert db.merge_labels(other, name, scifact.qrels, "majority") == merged
            # The corrected qrels, imported as one annotator's verdicts, give back the same qrels.
            db.import_qrels(other, name, paths["tsv"], "corrected")
            assert db.merge_labels(other, name, {}, "annotator:corrected", query_ids=scifact.all_queries).qrels == qrels
            assert len(db.list_events(other, name, annotator="corrected")) == sum(len(d) for d in qrels.values())
    finally:
        engine.dispose()


def test_a_bad_row_imports_nothing(session: Session, tmp_path: Path) -> None:
    name = db.ensure_dataset(session, "scifact").name
    bad = tmp_path / "bad.tsv"
    bad.write_text("query-id\tcorpus-id\tscore\n1\t31715818\t1\n1\tno-such-doc\t1\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.tsv: unknown doc id 'no-such-doc'"):
        db.import_qrels(session, name, bad, "x")
    bad.write_text("query-id\tcorpus-id\tscore\n1\t31715818\tone\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.tsv:2: the relevance grade must be an integer"):
        db.import_qrels(session, name, bad, "x")
    trec = tmp_path / "zero.trec"
    trec.write_text("1 0 31715818 0\n", encoding="utf-8")
    assert db.import_qrels(session, name, trec, "x").rows == 1
    assert db.get_judgment(session, name, "1", "31715818", "x").label == "not_relevant"  # a judged 0 is a negative
    assert db.list_judgments(session, name) and len(db.list_judgments(session, name)) == 1


def _candidates(data: Dataset) -> list[dict]:
    q = sorted(data.qrels)[0]
    docs = sorted(data.corpus)[:4]
    return [
        {
            "query_id": q,
            "doc_id": d,
            "rank": r,
            "score": 10.0 - r,
            "label": 0,
            "p_tp": 0.0,
            "p_fn": p,
            "p_fp": 0.0,
            "p_tn": 1 - p,
            "p_fn_given_neg": p,
        }
        for r, (d, p) in enumerate(zip(docs, (0.9, 0.2, 0.6, 0.05)))
    ]


def test_label_studio_tasks_and_their_export_read_back(session: Session, scifact: Dataset, tmp_path: Path) -> None:
    name = db.ensure_dataset(session, "scifact").name
    queue = db.review_queue(session, name, _candidates(scifact))
    tasks = db.label_studio_tasks(name, scifact.corpus, scifact.all_queries, queue, run_id="run-3")
    assert [t["data"]["p_fn_given_neg"] for t in tasks] == [0.9, 0.6, 0.2, 0.05]
    first = tasks[0]
    assert first["data"]["query"] == scifact.all_queries[first["data"]["query_id"]]
    assert scifact.corpus[first["data"]["doc_id"]].text in first["data"]["document"]
    (pred,) = first["predictions"]
    assert pred["model_version"] == "run-3" and pred["score"] == pytest.approx(0.9)
    assert pred["result"][0]["value"] == {"choices": ["relevant"]}
    assert tasks[2]["predictions"][0]["result"][0]["value"] == {"choices": ["not_relevant"]}
    assert tasks[2]["predictions"][0]["score"] == pytest.approx(0.8)
    for tag in ('name="relevance"', 'name="document"', 'value="$query"', 'name="note"'):
        assert tag in db.LABEL_STUDIO_CONFIG
    json.dumps(tasks)  # plain JSON

    # What Label Studio exports after two people labelled: read it back as judgments.
    exported = [dict(t, id=i) for i, t in enumerate(tasks)]
    exported[0]["annotations"] = [
        {
            "completed_by": {"id": 7, "email": "ann@lab.org"},
            "was_cancelled": False,
            "result": [
                {
                    "from_name": "relevance",
                    "to_name": "document",
                    "type": "choices",
                    "value": {"choices": ["relevant"]},
                },
                {"from_name": "note", "to_name": "document", "type": "textarea", "value": {"text": ["same finding"]}},
            ],
        },
        {
            "completed_by": 8,
            "result": [{"from_name": "relevance", "type": "choices", "value": {"choices": ["unsure"]}}],
        },
        {"completed_by": 9, "was_cancelled": True, "result": []},
    ]
    exported[1]["annotations"] = [
        {
            "completed_by": 8,
            "result": [{"from_name": "relevance", "type": "choices", "value": {"choices": ["not_relevant"]}}],
        }
    ]
    path = tmp_path / "ls-export.json"
    path.write_text(json.dumps(exported), encoding="utf-8")
    assert db.import_label_studio(session, name, path) == db.ImportSummary(3, 3)
    got = {(j.doc_id, j.annotator): (j.label, j.note) for j in db.list_judgments(session, name)}
    d0, d1 = tasks[0]["data"]["doc_id"], tasks[1]["data"]["doc_id"]
    assert got == {
        (d0, "ann@lab.org"): ("relevant", "same finding"),
        (d0, "label-studio:8"): ("unsure", ""),
        (d1, "label-studio:8"): ("not_relevant", ""),
    }
    assert [e.action for e in db.list_events(session, name)] == ["import"] * 3
    assert len(db.review_queue(session, name, _candidates(scifact))) == 2  # judged pairs left the queue

    exported[1]["annotations"][0]["result"][0]["value"]["choices"] = ["perhaps"]
    path.write_text(json.dumps(exported), encoding="utf-8")
    with pytest.raises(DataError, match="task 2: invalid label 'perhaps'"):
        db.import_label_studio(session, name, path)


def test_argilla_records(session: Session, scifact: Dataset) -> None:
    name = db.ensure_dataset(session, "scifact").name
    spec = db.argilla_records(name, scifact.corpus, scifact.all_queries, _candidates(scifact), run_id="run-3")
    assert [q["name"] for q in spec["settings"]["questions"]] == ["relevance", "note"]
    assert spec["settings"]["questions"][0]["labels"] == list(db.LABELS)
    rec = spec["records"][0]
    assert {"query", "document", "query_id", "doc_id", "relevance"} <= set(rec)
    assert (rec["relevance"], rec["suggestion_score"], rec["suggestion_agent"]) == (
        "relevant",
        pytest.approx(0.9),
        "run-3",
    )
    assert spec["mapping"] == {
        "suggestion_score": "relevance.suggestion.score",
        "suggestion_agent": "relevance.suggestion.agent",
    }
    assert len({r["id"] for r in spec["records"]}) == 4
    json.dumps(spec)


def test_exports_refuse_what_they_cannot_write(scifact: Dataset, tmp_path: Path) -> None:
    with pytest.raises(db.AnnotationError, match="not in the corpus"):
        db.training_examples(scifact.corpus, scifact.all_queries, {sorted(scifact.qrels)[0]: {"nope": 1}})
    with pytest.raises(db.AnnotationError, match="unknown training format"):
        db.write_training_file(tmp_path / "x.jsonl", [], "dpr")
    with pytest.raises(db.AnnotationError, match="spaces"):
        db.write_trec_qrels(tmp_path / "x.trec", {"a b": {"d": 1}})
    assert not (tmp_path / "x.trec").exists()  # atomic: no half-written file


def _pool(data: Dataset, n_queries: int = 12, k: int = 100) -> list[dict]:
    """A run's candidate pool: ``k`` scored candidates for each of ``n_queries`` queries (1,200 by default)."""
    docs = sorted(data.corpus)
    rows = []
    for i, q in enumerate(sorted(data.qrels)[:n_queries]):
        for r in range(k):
            d = docs[(i * 37 + r) % len(docs)]
            p = ((i * k + r) * 7919 % 1000) / 1000
            rows.append({"query_id": q, "doc_id": d, "rank": r, "score": 1.0 - r / k, "label": 0, "p_fn_given_neg": p})
    return rows


def test_a_task_export_sends_a_chosen_reviewable_share_not_the_whole_pool(
    session: Session, scifact: Dataset, db_url: str, tmp_path: Path
) -> None:
    """Issue 25 item 19: the Label Studio export wrote every candidate (79,192 tasks, 114 MB for the demo)."""
    from db.cli import main as cli_main
    from db.exports import DEFAULT_TASK_LIMIT, TaskChoice, select_tasks, write_tasks

    name = db.ensure_dataset(session, "scifact").name
    pool = _pool(scifact)
    judged = [pool[0], pool[150], pool[999]]
    db.save_judgments(
        session,
        name,
        [{"query_id": r["query_id"], "doc_id": r["doc_id"], "label": "relevant", "annotator": "ana"} for r in judged],
    )
    outside = {"query_id": pool[0]["query_id"], "doc_id": sorted(scifact.corpus)[-1]}  # judged, never a candidate
    db.save_judgment(session, name, outside["query_id"], outside["doc_id"], "not_relevant", "bo")
    unjudged = len({(r["query_id"], r["doc_id"]) for r in pool}) - 3

    # The default: the review queue's next 500, likeliest first, nobody's judged pairs.
    rows, selected = select_tasks(session, name, pool, TaskChoice())
    assert (len(rows), selected) == (DEFAULT_TASK_LIMIT, unjudged) and DEFAULT_TASK_LIMIT < len(pool)
    p = [r["p_fn_given_neg"] for r in rows]
    assert p == sorted(p, reverse=True)
    # Suspects above a threshold, all of them.
    rows, selected = select_tasks(session, name, pool, TaskChoice("suspects", threshold=0.9, limit=0))
    assert rows and all(r["p_fn_given_neg"] >= 0.9 for r in rows) and len(rows) == selected < unjudged
    # The judged pairs, with the model's view where the run scored them.
    rows, _ = select_tasks(session, name, pool, TaskChoice("judged"))
    assert {(r["query_id"], r["doc_id"]) for r in rows} == {
        *((r["query_id"], r["doc_id"]) for r in judged),
        (outside["query_id"], outside["doc_id"]),
    }
    assert sum(r.get("p_fn_given_neg") is None for r in rows) == 1
    with pytest.raises(db.AnnotationError, match="task selection"):
        TaskChoice("everything")

    # Streamed to disk, the file is what the in-memory builders make of the same rows.
    rows, _ = select_tasks(session, name, pool, TaskChoice(limit=20))
    ls, ar = tmp_path / "ls.json", tmp_path / "ar.json"
    assert write_tasks(ls, "label-studio", name, scifact.corpus, scifact.all_queries, iter(rows), run_id="r1") == 20
    assert json.loads(ls.read_text()) == db.label_studio_tasks(
        name, scifact.corpus, scifact.all_queries, rows, run_id="r1"
    )
    write_tasks(ar, "argilla", name, scifact.corpus, scifact.all_queries, iter(rows), run_id="r1")
    assert json.loads(ar.read_text()) == db.argilla_records(
        name, scifact.corpus, scifact.all_queries, rows, run_id="r1"
    )
    write_tasks(ls, "label-studio", name, scifact.corpus, scifact.all_queries, [])
    assert json.loads(ls.read_text()) == []

    # The command line: the same choices as flags, the default a size a person uploads.
    preds = tmp_path / "predictions.jsonl"
    preds.write_text("".join(json.dumps(r) + "\n" for r in pool), encoding="utf-8")
    base = ["--db", db_url, "export", "--dataset", "scifact", "--format", "label-studio", "--out", str(ls)]
    assert cli_main([*base, "--predictions", str(preds)]) == 0
    assert len(json.loads(ls.read_text())) == DEFAULT_TASK_LIMIT
    assert (
        cli_main([*base, "--predictions", str(preds), "--select", "suspects", "--threshold", "0.9", "--limit", "0"])
        == 0
    )
    assert all(t["data"]["p_fn_given_neg"] >= 0.9 for t in json.loads(ls.read_text()))
    assert cli_main([*base, "--select", "judged"]) == 0  # no predictions needed
    assert len(json.loads(ls.read_text())) == 4
