"""The store's reads at scale (issue 27 item 6) give what the per-judgment code gave, on SQLite and PostgreSQL.

The Overview, agreement, the Disagreements list and the merge now count in the
database or on arrays; here each is checked against a plain Python reading of
the same synthetic store (db/scale.py, a few thousand judgments).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from sqlalchemy.orm import Session

import db
from db.agreement import _kappa
from db.scale import ScaleConfig, fill_store, time_reads

CFG = ScaleConfig(judgments=1_500, docs_per_query=4, seed=3)


@pytest.fixture()
def filled(engine) -> dict:  # noqa: ANN001
    fill_store(engine, CFG, progress=lambda _: None)
    with Session(engine) as s:
        rows = [(j.query_id, j.doc_id, j.annotator, j.label) for j in db.list_judgments(s, CFG.dataset)]
    return {"engine": engine, "rows": rows}


def _by_pair(rows: list) -> dict[tuple[str, str], dict[str, str]]:
    votes: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for q, d, who, label in rows:
        votes[(q, d)][who] = label
    return votes


def test_the_overview_counts_are_what_every_judgment_says(filled: dict) -> None:
    rows = filled["rows"]
    assert len(rows) == CFG.judgments
    with Session(filled["engine"]) as s:
        got = db.overview_counts(s, CFG.dataset, "annotator-1")
        assert got.judged_pairs == len({(q, d) for q, d, _, _ in rows})
        assert got.mine == {(q, d) for q, d, who, _ in rows if who == "annotator-1"}
        counts = Counter(who for _, _, who, _ in rows)
        assert {a: c["total"] for a, c in got.annotators.items()} == dict(counts)
        assert got.agreement is not None and got.agreement.n_items == sum(len(v) >= 2 for v in _by_pair(rows).values())


def test_majority_verdicts_count_votes_as_the_policy_says(filled: dict) -> None:
    settled = set()
    with Session(filled["engine"]) as s:
        settled = set(db.adjudications(s, CFG.dataset))
        decided = db.decide(s, CFG.dataset, "majority")
    for pair, votes in _by_pair(filled["rows"]).items():
        if pair in settled:
            assert decided[pair] is True  # the synthetic adjudications say relevant
            continue
        expected = db.policy_verdict("majority", list(votes.values()))
        assert decided.get(pair) == expected, (pair, votes)


def test_the_disagreements_are_the_pairs_with_two_labels(filled: dict) -> None:
    with Session(filled["engine"]) as s:
        listed = {(x.query_id, x.doc_id): x.votes for x in db.disagreements(s, CFG.dataset)}
        open_ = {(x.query_id, x.doc_id) for x in db.disagreements(s, CFG.dataset, open_only=True)}
        settled = set(db.adjudications(s, CFG.dataset))
    expected = {p: dict(sorted(v.items())) for p, v in _by_pair(filled["rows"]).items() if len(set(v.values())) > 1}
    assert listed == expected and len(expected) > 10
    assert open_ == set(expected) - settled and settled


def test_a_judgments_export_is_sorted_and_complete(filled: dict, tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Session(filled["engine"]) as s:
        assert db.export_judgments(s, path, CFG.dataset) == CFG.judgments
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    keys = [(o["query_id"], o["doc_id"], o["annotator"]) for o in lines]
    assert keys == sorted(keys) and len(set(keys)) == CFG.judgments
    assert lines[0]["created_at"].endswith("+00:00") and list(lines[0])[:4] == [
        "dataset",
        "query_id",
        "doc_id",
        "annotator",
    ]


def test_every_timed_read_runs_and_counts_rows(filled: dict, tmp_path: Path) -> None:
    reads = time_reads(filled["engine"], CFG, tmp_path / "out")
    assert reads["export judgments"]["rows"] == CFG.judgments
    assert all(r["seconds"] >= 0 and r["rows"] >= 0 for r in reads.values()) and len(reads) == 9


@pytest.mark.parametrize("seed", range(6))
def test_kappa_on_codes_is_scikit_learns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    a, b = rng.integers(0, 3, n), rng.integers(0, 3, n)
    b[: n // 2] = a[: n // 2]  # some agreement
    labels = np.array(db.LABELS)
    expected = cohen_kappa_score(labels[a], labels[b], labels=list(db.LABELS))
    got = _kappa(a, b)
    if np.isnan(expected):
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_kappa_is_undefined_when_one_label_is_everywhere() -> None:
    assert _kappa(np.array([1, 1]), np.array([1, 1])) is None
    assert _kappa(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) is None
