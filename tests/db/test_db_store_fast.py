"""The store's aggregate reads (issue 27 item 6) equal the definitions they replaced, on SQLite and PostgreSQL.

Agreement is counted in the database (packed vote patterns, or a self-join
beyond ``PACKED_MAX`` annotators), the Disagreements list pages in SQL, and the
judgments export streams from the driver's cursor: each is checked here against
the row-by-row reading it replaced, on a small synthetic store (db/scale.py)
with a few hand-made edge cases on top.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import krippendorff
import numpy as np
import orjson
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy.orm import Session

import db
from db.scale import ScaleConfig, fill_store

agreement_module = importlib.import_module("db.agreement")
CFG = ScaleConfig(judgments=1_200, docs_per_query=4, seed=5)


@pytest.fixture()
def filled(engine):  # noqa: ANN001, ANN201
    fill_store(engine, CFG, progress=lambda _: None)
    with Session(engine) as s:
        # Unsure-only and single-annotator pairs, and a note that looks like the export's object boundary.
        db.save_judgment(s, CFG.dataset, "q0", "d0", "unsure", "annotator-9", note='x"},{"dataset":"y\n\t\u00e9')
    return engine


def _votes(s: Session, include_unsure: bool, annotators: list[str] | None) -> list[tuple[str, str, str, str]]:
    rows = [(j.query_id, j.doc_id, j.annotator, j.label) for j in db.list_judgments(s, CFG.dataset)]
    rows = [r for r in rows if include_unsure or r[3] != "unsure"]
    return [r for r in rows if annotators is None or r[2] in annotators]


def _old_agreement(rows: list[tuple[str, str, str, str]], names: tuple[str, ...]) -> dict:
    """The definition before the database counted: label codes per item, scikit-learn kappa, krippendorff on them."""
    by_pair: dict[tuple[str, str], dict[str, str]] = {}
    for q, d, who, label in rows:
        by_pair.setdefault((q, d), {})[who] = label
    items = [v for v in by_pair.values() if len(v) >= 2]
    pairwise, shared, agree, total = {}, {}, 0, 0
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = [(v[a], v[b]) for v in items if a in v and b in v]
            shared[(a, b)] = len(both)
            x, y = [p[0] for p in both], [p[1] for p in both]
            kappa = cohen_kappa_score(x, y, labels=list(db.LABELS)) if both else math.nan
            undefined = not both or (len(set(x)) == 1 and set(x) == set(y))
            pairwise[(a, b)] = None if undefined or math.isnan(kappa) else float(kappa)
            agree += sum(p == q for p, q in both)
            total += len(both)
    code = {label: i for i, label in enumerate(db.LABELS)}
    data = np.array([[code[v[n]] if n in v else np.nan for v in items] for n in names], dtype=float)
    labels_used = {label for v in items for label in v.values()}
    alpha = None
    if len(names) > 2 and items and len(labels_used) > 1:
        alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal", value_domain=[0, 1, 2]))
    return {
        "n_items": len(items),
        "pairwise": pairwise,
        "shared": shared,
        "observed": agree / total if total else None,
        "alpha": alpha,
    }


def _same(got: float | None, expected: float | None) -> bool:
    return (got is None and expected is None) or (
        got is not None and expected is not None and got == pytest.approx(expected, abs=1e-12)
    )


@pytest.mark.parametrize("packed_max", [31, 2], ids=["packed", "self-join"])
@pytest.mark.parametrize(
    ("include_unsure", "annotators"),
    [
        (True, None),
        (False, None),
        (True, ["annotator-1", "annotator-3"]),
        (False, ["annotator-0", "annotator-2", "annotator-4"]),
    ],
)
def test_agreement_counted_in_the_database_is_the_old_definition(
    filled, monkeypatch: pytest.MonkeyPatch, packed_max: int, include_unsure: bool, annotators: list[str] | None
) -> None:  # noqa: ANN001
    monkeypatch.setattr(agreement_module, "PACKED_MAX", packed_max)
    with Session(filled) as s:
        got = db.agreement(s, CFG.dataset, annotators=annotators, include_unsure=include_unsure)
        rows = _votes(s, include_unsure, annotators)
    names = tuple(sorted(annotators or {r[2] for r in rows}))
    expected = _old_agreement(rows, names)
    assert got.annotators == names and got.n_items == expected["n_items"] > 50
    assert got.pairwise_items == expected["shared"]
    assert got.pairwise_kappa.keys() == expected["pairwise"].keys()
    assert all(_same(got.pairwise_kappa[p], k) for p, k in expected["pairwise"].items())
    assert _same(got.observed_agreement, expected["observed"])
    if len(names) == 2:
        assert got.method == "cohen_kappa" and _same(got.value, expected["pairwise"][names])
    else:
        assert got.method == "krippendorff_alpha" and _same(got.value, expected["alpha"])


def test_one_label_everywhere_leaves_agreement_undefined(session: Session, toy: str) -> None:
    for who in ("alice", "bob", "carol"):
        db.save_judgment(session, toy, "q1", "d1", "relevant", who)
    got = db.agreement(session, toy)
    assert got.method == "krippendorff_alpha" and got.value is None and got.n_items == 1
    assert got.observed_agreement == 1.0 and all(k is None for k in got.pairwise_kappa.values())


def test_disagreement_pages_are_slices_of_the_whole_list(filled) -> None:  # noqa: ANN001
    with Session(filled) as s:
        for open_only in (False, True):
            whole = db.disagreements(s, CFG.dataset, open_only=open_only)
            assert len(whole) > 12
            pages = [
                db.disagreements(s, CFG.dataset, open_only=open_only, offset=o, limit=5)
                for o in range(0, len(whole), 5)
            ]
            assert [x for page in pages for x in page] == whole
        total, open_ = db.count_disagreements(s, CFG.dataset)
        assert total == len(db.disagreements(s, CFG.dataset))
        assert open_ == len(db.disagreements(s, CFG.dataset, open_only=True)) < total
        assert db.count_disagreements(s, "no-such-dataset") == (0, 0)


def test_the_streamed_export_writes_what_one_dumps_per_judgment_wrote(filled, tmp_path: Path) -> None:  # noqa: ANN001
    path = tmp_path / "j.jsonl"
    with Session(filled) as s:
        n = db.export_judgments(s, path, CFG.dataset)
        rows = db.list_judgments(s, CFG.dataset)
    names = ("query_id", "doc_id", "annotator", "label", "note", *db.MODEL_VIEW_FIELDS)
    rows.sort(key=lambda j: (j.query_id.encode(), j.doc_id.encode(), j.annotator.encode()))
    expected = b"".join(
        orjson.dumps(
            {
                "dataset": CFG.dataset,
                **{k: getattr(j, k) for k in names},
                "created_at": j.created_at.replace(tzinfo=None),
                "updated_at": j.updated_at.replace(tzinfo=None),
            },
            option=orjson.OPT_NAIVE_UTC | orjson.OPT_APPEND_NEWLINE,
        )
        for j in rows
    )
    assert n == len(rows) == CFG.judgments + 1 and path.read_bytes() == expected
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["dataset"] == CFG.dataset


def test_an_export_of_an_unknown_dataset_is_empty(session: Session, tmp_path: Path) -> None:
    assert db.export_judgments(session, tmp_path / "none.jsonl", "no-such-dataset") == 0
    assert (tmp_path / "none.jsonl").read_bytes() == b""


@pytest.mark.parametrize("reader", ["annotator-2", None])
def test_the_overviews_one_scan_equals_the_separate_reads(filled, reader: str | None) -> None:  # noqa: ANN001
    with Session(filled) as s:
        db.adjudicate(s, CFG.dataset, "q1", "d4", "unsure", "lead")  # an unsure adjudication undecides a pair
        got = db.overview_counts(s, CFG.dataset, reader)
        assert got.judged_pairs == db.count_judged_pairs(s, CFG.dataset)
        assert got.annotators == db.annotator_counts(s, CFG.dataset)
        assert got.agreement == db.agreement(s, CFG.dataset)
        assert got.decided == db.decide(s, CFG.dataset, "majority")
        assert got.mine == (db.judged_pairs(s, CFG.dataset, annotator=reader) if reader else set())
        assert db.overview_counts(s, "no-such-dataset", reader) == db.OverviewCounts(0, {}, None, {}, set())


@pytest.mark.parametrize("policy", ["majority", "any_relevant", "annotator:annotator-3"])
def test_verdicts_decided_in_the_database_follow_the_policy(filled, policy: str) -> None:  # noqa: ANN001
    with Session(filled) as s:
        db.adjudicate(s, CFG.dataset, "q1", "d4", "unsure", "lead")
        kind, name = db.parse_policy(policy)
        by_pair: dict[tuple[str, str], list[str]] = {}
        for j in db.list_judgments(s, CFG.dataset, annotator=name):
            by_pair.setdefault((j.query_id, j.doc_id), []).append(j.label)
        expected = {p: v for p, labels in by_pair.items() if (v := db.policy_verdict(kind, labels)) is not None}
        for pair, adj in db.adjudications(s, CFG.dataset).items():
            if adj.verdict == "unsure":
                expected.pop(pair, None)
            else:
                expected[pair] = adj.verdict == "relevant"
        got = db.decide(s, CFG.dataset, policy)
    assert got == expected and len(got) > 100


@pytest.mark.parametrize("seed", range(5))
def test_alpha_on_weighted_rows_is_the_packages_on_repeated_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 4, size=(int(rng.integers(2, 30)), 3))
    rows = rows[rows.sum(axis=1) >= 2]
    items = rng.integers(1, 50, size=len(rows))
    expected = krippendorff.alpha(
        value_counts=np.repeat(rows, items, axis=0), level_of_measurement="nominal", value_domain=[0, 1, 2]
    )
    assert agreement_module._alpha_nominal(rows, items) == pytest.approx(expected, abs=1e-12)
