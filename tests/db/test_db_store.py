"""The store's operations as the app uses them: save, undo, read, review, merge, agreement, jobs."""

from __future__ import annotations

import math
import subprocess
import sys

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import db
from db.models import Judgment, JudgmentEvent
from rrra_core.data import apply_verdicts
from rrra_core.runtime.errors import ConfigError, UserError
from rrra_core.runtime.paths import REPO_ROOT

VIEW = {"run_id": "run-1", "p_tp": 0.1, "p_fn": 0.6, "p_fp": 0.1, "p_tn": 0.2, "rank": 3, "score": 12.5}


def _counts(session: Session) -> tuple[int, int]:
    session.commit()
    return session.scalar(select(func.count()).select_from(Judgment)), session.scalar(
        select(func.count()).select_from(JudgmentEvent)
    )


# --- save and history --------------------------------------------------------------


def test_saving_again_updates_the_one_judgment_and_logs_every_change(session: Session, toy: str) -> None:
    first = db.save_judgment(
        session, toy, "q1", "d1", "relevant", "alice", model_view={**VIEW, "label": 0, "extra": "x"}
    )
    assert (first.label, first.run_id, first.p_fn, first.rank, first.dataset_name) == (
        "relevant",
        "run-1",
        0.6,
        3,
        "toy",
    )
    second = db.save_judgment(session, toy, "q1", "d1", "not_relevant", "alice", note="on second look")
    assert second.id == first.id
    assert (second.label, second.note) == ("not_relevant", "on second look")
    assert second.run_id == "run-1"  # a save without a model view keeps the recorded one
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    db.save_judgment(session, toy, "q1", "d1", "unsure", "bob")

    assert _counts(session) == (2, 3)
    events = db.list_events(session, toy)
    assert [(e.action, e.annotator, e.old_label, e.new_label) for e in events] == [
        ("save", "alice", None, "relevant"),
        ("save", "alice", "relevant", "not_relevant"),
        ("save", "bob", None, "unsure"),
    ]
    assert events[0].p_fn == 0.6 and events[1].previous["label"] == "relevant"
    assert db.list_events(session, toy, limit=1)[0].annotator == "bob"


def test_timestamps_are_utc_aware(session: Session, toy: str) -> None:
    j = db.save_judgment(session, toy, "q1", "d1", "relevant", "alice")
    again = db.get_judgment(session, toy, "q1", "d1", "alice")
    assert again is not None and again.created_at.utcoffset() is not None
    assert again.created_at == j.created_at


def test_undo_steps_back_through_the_annotators_own_saves(session: Session, toy: str) -> None:
    db.save_judgment(session, toy, "q1", "d1", "relevant", "alice", model_view=VIEW, note="first")
    before = db.get_judgment(session, toy, "q1", "d1", "alice").state()
    db.save_judgment(session, toy, "q1", "d1", "not_relevant", "alice", model_view={**VIEW, "p_fn": 0.1}, note="second")
    db.save_judgment(session, toy, "q2", "d2", "unsure", "alice")
    db.save_judgment(session, toy, "q1", "d1", "relevant", "bob")  # someone else's save is not alice's to undo

    undone = db.undo_last(session, toy, "alice")
    assert (undone.action, undone.query_id, undone.old_label, undone.new_label) == ("undo", "q2", "unsure", None)
    assert db.get_judgment(session, toy, "q2", "d2", "alice") is None  # the save created it, so undo deletes it

    db.undo_last(session, toy, "alice")
    assert (
        db.get_judgment(session, toy, "q1", "d1", "alice").state() == before
    )  # exactly as before, model view included

    last = db.undo_last(session, toy, "alice")
    assert (last.old_label, last.new_label) == ("relevant", None)
    assert db.undo_last(session, toy, "alice") is None
    assert db.get_judgment(session, toy, "q1", "d1", "bob").label == "relevant"
    assert [e.action for e in db.list_events(session, toy, annotator="alice")] == ["save"] * 3 + ["undo"] * 3


def test_undo_after_a_new_save_undoes_that_save_first(session: Session, toy: str) -> None:
    db.save_judgment(session, toy, "q1", "d1", "relevant", "alice")
    db.save_judgment(session, toy, "q1", "d1", "not_relevant", "alice")
    db.undo_last(session, toy, "alice")
    db.save_judgment(session, toy, "q1", "d1", "unsure", "alice")
    db.undo_last(session, toy, "alice")
    assert db.get_judgment(session, toy, "q1", "d1", "alice").label == "relevant"
    db.undo_last(session, toy, "alice")
    assert db.get_judgment(session, toy, "q1", "d1", "alice") is None


BAD_SAVES = [
    (("nope", "q1", "d1", "relevant", "alice"), "unknown dataset 'nope'"),
    (("toy", "q99", "d1", "relevant", "alice"), "unknown query id 'q99'"),
    (("toy", "q1", "d99", "relevant", "alice"), "unknown doc id 'd99'"),
    (("toy", "q1", "d1", "Relevant", "alice"), "invalid label 'Relevant'"),
    (("toy", "q1", "d1", 1, "alice"), "invalid label 1"),
    (("toy", "q1", "d1", "relevant", ""), "annotator name is empty"),
    (("toy", "q1", "d1", "relevant", "   "), "annotator name is empty"),
]


@pytest.mark.parametrize(("args", "message"), BAD_SAVES)
def test_bad_input_is_a_one_line_error_and_writes_nothing(
    session: Session, toy: str, args: tuple, message: str
) -> None:
    with pytest.raises(db.AnnotationError, match=message) as err:
        db.save_judgment(session, *args)
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    assert _counts(session) == (0, 0)


def test_bad_probability_is_refused(session: Session, toy: str) -> None:
    with pytest.raises(db.AnnotationError, match="p_fn must be a probability"):
        db.save_judgment(session, toy, "q1", "d1", "relevant", "alice", model_view={"p_fn": 1.5})
    assert _counts(session) == (0, 0)


def test_one_bad_item_rejects_the_whole_batch(session: Session, toy: str) -> None:
    good = [{"query_id": "q1", "doc_id": f"d{i}", "label": "relevant", "annotator": "alice"} for i in range(1, 6)]
    for bad in ({"doc_id": "d404"}, {"label": "maybe"}, {"annotator": ""}):
        with pytest.raises(db.AnnotationError):
            db.save_judgments(session, toy, [*good, {**good[0], "doc_id": "d7", **bad}])
    with pytest.raises(db.AnnotationError, match="twice"):
        db.save_judgments(session, toy, [*good, good[0]])
    assert _counts(session) == (0, 0)
    saved = db.save_judgments(session, toy, good, run_id="run-2")
    assert len(saved) == 5 and {j.run_id for j in saved} == {"run-2"}
    assert _counts(session) == (5, 5)


def test_the_database_itself_refuses_unknown_ids(session: Session, toy: str) -> None:
    from sqlalchemy.exc import IntegrityError

    ds = db.get_dataset(session, toy)
    now = db.models.utcnow()
    session.add(
        Judgment(
            dataset_id=ds.id,
            query_id="q1",
            doc_id="d404",
            annotator="x",
            label="relevant",
            note="",
            created_at=now,
            updated_at=now,
        )
    )
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_reads_by_query_and_counts(session: Session, toy: str) -> None:
    db.save_judgments(
        session,
        toy,
        [
            {"query_id": "q1", "doc_id": "d2", "label": "relevant", "annotator": "bob"},
            {"query_id": "q1", "doc_id": "d1", "label": "not_relevant", "annotator": "bob"},
            {"query_id": "q1", "doc_id": "d1", "label": "relevant", "annotator": "alice"},
            {"query_id": "q2", "doc_id": "d1", "label": "unsure", "annotator": "alice"},
        ],
    )
    assert [(j.doc_id, j.annotator) for j in db.list_by_query(session, toy, "q1")] == [
        ("d1", "alice"),
        ("d1", "bob"),
        ("d2", "bob"),
    ]
    assert [j.doc_id for j in db.list_by_query(session, toy, "q1", annotator="bob")] == ["d1", "d2"]
    assert db.annotator_counts(session, toy) == {
        "alice": {"relevant": 1, "not_relevant": 0, "unsure": 1, "total": 2},
        "bob": {"relevant": 1, "not_relevant": 1, "unsure": 0, "total": 2},
    }
    assert db.list_by_query(session, "unknown", "q1") == [] and db.annotator_counts(session, "unknown") == {}


def test_registering_again_adds_ids_and_keeps_old_ones(session: Session, toy: str) -> None:
    ds = db.register_dataset(session, toy, ["q7"], ["d21"])
    assert (ds.n_queries, ds.n_docs) == (7, 21)
    db.save_judgment(session, toy, "q7", "d21", "relevant", "alice")


def test_ensure_dataset_registers_a_beir_folder_once(session: Session, tmp_path) -> None:  # noqa: ANN001
    folder = tmp_path / "mini"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": "y"}\n', encoding="utf-8")
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n', encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\ta\t1\n", encoding="utf-8")
    ds = db.ensure_dataset(session, folder)
    assert (ds.name, ds.n_queries, ds.n_docs) == ("mini", 1, 2)
    assert db.ensure_dataset(session, folder).id == ds.id
    other = tmp_path / "elsewhere" / "mini"
    other.parent.mkdir()
    folder.rename(other)
    with pytest.raises(db.AnnotationError, match="already registered"):
        db.ensure_dataset(session, other)
    assert db.ensure_dataset(session, other, name="mini-2").name == "mini-2"


# --- review queue ------------------------------------------------------------------------

CANDIDATES = [
    {"query_id": "q1", "doc_id": "d1", "rank": 0, "score": 9.0, "label": 1, "p_fn_given_neg": 0.99},
    {"query_id": "q1", "doc_id": "d2", "rank": 1, "score": 8.0, "label": 0, "p_fn_given_neg": 0.9},
    {"query_id": "q1", "doc_id": "d3", "rank": 2, "score": 7.0, "label": 0, "p_fn_given_neg": 0.45},
    {"query_id": "q2", "doc_id": "d4", "rank": 0, "score": 6.0, "label": 0, "p_fn": 0.3, "p_tn": 0.1},  # 0.75
    {"query_id": "q2", "doc_id": "d5", "rank": 1, "score": 5.0, "label": 0, "p_fn_given_neg": 0.1},
    {"query_id": "q3", "doc_id": "d6", "rank": 0, "score": 4.0, "label": 0},  # no model reading
]


def _ids(rows: list[dict]) -> list[str]:
    return [r["doc_id"] for r in rows]


def test_review_queue_orders_and_filters(session: Session, toy: str) -> None:
    assert _ids(db.review_queue(session, toy, CANDIDATES)) == ["d2", "d4", "d3", "d5", "d6"]
    assert _ids(db.review_queue(session, toy, CANDIDATES, "uncertainty")) == ["d3", "d4", "d2", "d5", "d6"]
    assert _ids(db.review_queue(session, toy, CANDIDATES, threshold=0.5)) == ["d2", "d4"]
    assert _ids(db.review_queue(session, toy, CANDIDATES, query_ids={"q2"})) == ["d4", "d5"]
    assert _ids(db.review_queue(session, toy, CANDIDATES, negatives_only=False, limit=2)) == ["d1", "d2"]
    shuffled = _ids(db.review_queue(session, toy, CANDIDATES, "random", seed=3))
    assert sorted(shuffled) == ["d2", "d3", "d4", "d5", "d6"]
    assert _ids(db.review_queue(session, toy, CANDIDATES, "random", seed=3)) == shuffled  # stable across refreshes
    assert db.review_queue(session, toy, CANDIDATES)[1]["p_fn_given_neg"] == pytest.approx(0.75)

    db.save_judgment(session, toy, "q1", "d2", "relevant", "alice", model_view=CANDIDATES[1])
    assert _ids(db.review_queue(session, toy, CANDIDATES)) == ["d4", "d3", "d5", "d6"]  # judged by anyone: out
    assert _ids(db.review_queue(session, toy, CANDIDATES, annotator="bob"))[0] == "d2"  # bob has not judged it
    assert _ids(db.review_queue(session, toy, CANDIDATES, exclude_judged=False))[0] == "d2"
    with pytest.raises(db.AnnotationError, match="unknown review order"):
        db.review_queue(session, toy, CANDIDATES, "best")


def test_review_queue_takes_a_dataframe(session: Session, toy: str) -> None:
    import pandas as pd

    assert _ids(db.review_queue(session, toy, pd.DataFrame(CANDIDATES), threshold=0.5)) == ["d2", "d4"]


# --- merging into training labels -----------------------------------------------------------

BASE = {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}, "q3": {"d4": 1}}


def _judge(session: Session, toy: str, rows: list[tuple[str, str, str, str]]) -> None:
    db.save_judgments(
        session, toy, [{"query_id": q, "doc_id": d, "label": lab, "annotator": who} for q, d, lab, who in rows]
    )


@pytest.fixture()
def judged(session: Session, toy: str) -> str:
    _judge(
        session,
        toy,
        [
            ("q1", "d5", "relevant", "alice"),
            ("q1", "d5", "relevant", "bob"),
            ("q1", "d5", "not_relevant", "carol"),  # FN found
            ("q1", "d2", "not_relevant", "alice"),
            ("q1", "d2", "not_relevant", "bob"),  # a wrong positive
            ("q2", "d6", "relevant", "alice"),
            ("q2", "d6", "not_relevant", "bob"),  # tie
            ("q2", "d7", "not_relevant", "alice"),
            ("q2", "d7", "unsure", "bob"),  # confirmed negative
            ("q3", "d4", "unsure", "alice"),
            ("q3", "d4", "unsure", "bob"),  # unsure never changes anything
            ("q4", "d8", "relevant", "alice"),  # q4 has no base positives: out of scope unless asked for
        ],
    )
    return toy


def _merge(session: Session, dataset: str, base: dict, policy: str, **kw) -> tuple[dict, dict]:  # noqa: ANN003
    out = db.merge_labels(session, dataset, base, policy, **kw)
    return out.qrels, out.confirmed_negatives


def test_majority_merge(session: Session, judged: str) -> None:
    qrels, negatives = _merge(session, judged, BASE, "majority")
    assert qrels == {"q1": {"d1": 1, "d5": 1}, "q2": {"d3": 1}, "q3": {"d4": 1}}
    assert negatives == {"q1": {"d2"}, "q2": {"d7"}}
    assert BASE == {"q1": {"d1": 1, "d2": 2}, "q2": {"d3": 1}, "q3": {"d4": 1}}  # base untouched
    assert all(g > 0 for docs in qrels.values() for g in docs.values())  # never a 0 for a negative


def test_any_relevant_and_annotator_policies(session: Session, judged: str) -> None:
    qrels, negatives = _merge(session, judged, BASE, "any_relevant")
    assert qrels["q2"] == {"d3": 1, "d6": 1} and "d5" in qrels["q1"]
    assert negatives == {"q1": {"d2"}, "q2": {"d7"}}
    qrels, negatives = _merge(session, judged, BASE, "annotator:carol")
    assert qrels == {**BASE, "q1": {"d1": 1, "d2": 2}} and negatives == {"q1": {"d5"}}
    with pytest.raises(db.AnnotationError, match="no judgments"):
        db.merge_labels(session, judged, BASE, "annotator:dave")
    with pytest.raises(db.AnnotationError, match="unknown merge policy"):
        db.merge_labels(session, judged, BASE, "loudest")


def test_merge_scope_and_a_query_losing_its_only_positive(session: Session, judged: str) -> None:
    qrels, _ = _merge(session, judged, BASE, "majority", query_ids={"q1", "q4"})
    assert qrels["q4"] == {"d8": 1} and qrels["q2"] == {"d3": 1}  # q2's judgments were out of scope
    _judge(session, judged, [("q3", "d4", "not_relevant", "carol")])
    qrels, negatives = _merge(session, judged, BASE, "majority")
    assert "q3" not in qrels and negatives["q3"] == {"d4"}


def test_the_store_supplies_verdicts_and_the_merge_is_the_core_function(session: Session, judged: str) -> None:
    verdicts = db.decide(session, judged, "majority")
    assert verdicts == {("q1", "d2"): False, ("q1", "d5"): True, ("q2", "d7"): False, ("q4", "d8"): True}
    # merge_labels is apply_verdicts on those verdicts: one merge, whoever calls it.
    assert db.merge_labels(session, judged, BASE, "majority", query_ids={"q1", "q2"}) == apply_verdicts(
        BASE, verdicts, query_ids={"q1", "q2"}
    )
    merged = db.merge_labels(session, judged, BASE, "majority")
    assert merged.verdicts == {k: v for k, v in verdicts.items() if k[0] != "q4"}  # the verdicts used, in scope
    assert merged.human_relevant == {"q1": {"d5"}}
    assert merged.summary(BASE) == {"judgments": 3, "false_negatives_added": 1, "confirmed_negatives": 2}


# --- agreement ----------------------------------------------------------------------------------


def test_cohen_kappa_for_two_annotators(session: Session, toy: str) -> None:
    a = ["relevant", "relevant", "not_relevant", "not_relevant", "unsure", "relevant"]
    b = ["relevant", "not_relevant", "not_relevant", "not_relevant", "unsure", "relevant"]
    rows = [(f"q{i % 3 + 1}", f"d{i + 1}", lab, "alice") for i, lab in enumerate(a)]
    rows += [(f"q{i % 3 + 1}", f"d{i + 1}", lab, "bob") for i, lab in enumerate(b)]
    rows.append(("q1", "d20", "relevant", "alice"))  # judged once: not an item
    _judge(session, toy, rows)
    res = db.agreement(session, toy)
    assert (res.method, res.n_items, res.annotators) == ("cohen_kappa", 6, ("alice", "bob"))
    assert res.value == pytest.approx(cohen_kappa_score(a, b))
    assert res.observed_agreement == pytest.approx(5 / 6)
    without = db.agreement(session, toy, include_unsure=False)
    assert without.n_items == 5 and without.value == pytest.approx(cohen_kappa_score(a[:4] + a[5:], b[:4] + b[5:]))


def test_krippendorff_alpha_for_three_annotators(session: Session, toy: str) -> None:
    votes = {
        "alice": ["relevant", "relevant", "not_relevant", "not_relevant", None, "relevant"],
        "bob": ["relevant", "not_relevant", "not_relevant", "not_relevant", "unsure", None],
        "carol": ["relevant", "relevant", None, "not_relevant", "unsure", "not_relevant"],
    }
    _judge(
        session,
        toy,
        [(f"q{j % 3 + 1}", f"d{j + 1}", lab, who) for who, labs in votes.items() for j, lab in enumerate(labs) if lab],
    )
    res = db.agreement(session, toy)
    code = {"relevant": 0, "not_relevant": 1, "unsure": 2}
    data = np.array([[np.nan if lab is None else code[lab] for lab in labs] for labs in votes.values()])
    expected = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal", value_domain=[0, 1, 2])
    assert (res.method, res.n_items) == ("krippendorff_alpha", 6)
    assert res.value == pytest.approx(expected)
    assert set(res.pairwise_kappa) == {("alice", "bob"), ("alice", "carol"), ("bob", "carol")}
    two = db.agreement(session, toy, annotators=["alice", "carol"])
    assert two.method == "cohen_kappa" and two.n_items == 4


def test_agreement_undefined_cases(session: Session, toy: str) -> None:
    assert db.agreement(session, toy).value is None  # nobody judged
    _judge(
        session,
        toy,
        [
            ("q1", "d1", "relevant", "alice"),
            ("q1", "d1", "relevant", "bob"),
            ("q1", "d2", "relevant", "alice"),
            ("q1", "d2", "relevant", "bob"),
        ],
    )
    res = db.agreement(session, toy)
    assert res.value is None and res.observed_agreement == 1.0  # one label everywhere: chance is 1
    with pytest.raises(db.AnnotationError, match="'zed' has no judgments"):
        db.agreement(session, toy, annotators=["alice", "zed"])


# --- engine and import hygiene -------------------------------------------------------------------


def test_url_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.delenv(db.DB_URL_ENV, raising=False)
    assert db.resolve_url() == f"sqlite:///{db.default_db_path()}"
    assert str(db.default_db_path()).endswith(".rrra/annotations.sqlite")
    monkeypatch.setenv(db.DB_URL_ENV, "postgres://u:secret@h:5432/x")
    assert db.resolve_url() == "postgresql+psycopg://u:secret@h:5432/x"
    assert "secret" not in db.display_url(db.resolve_url())
    assert db.resolve_url(tmp_path / "a.sqlite") == f"sqlite:///{tmp_path / 'a.sqlite'}"  # --db wins over the variable
    for bad, message in [
        ("mysql://h/x", "unsupported database"),
        ("sqlite://", "in-memory"),
        ("postgresql+psycopg2://h/x", "psycopg 3"),
    ]:
        with pytest.raises(ConfigError, match=message):
            db.resolve_url(bad)


def test_unreachable_postgres_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match="cannot open the annotation database") as err:
        db.init_db("postgresql://nobody:pw@127.0.0.1:1/none")
    assert "pw" not in str(err.value) and "\n" not in str(err.value)


def test_db_never_imports_torch_or_streamlit() -> None:
    code = "import sys, db, db.cli; bad = [m for m in ('torch', 'streamlit') if m in sys.modules]; assert not bad, bad"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr


def test_public_surface_is_listed() -> None:
    missing = [name for name in db.__all__ if not hasattr(db, name)]
    assert not missing
    assert not math.isnan(db.p_fn_given_neg({"p_fn": 0.2, "p_tn": 0.2}) or math.nan)
