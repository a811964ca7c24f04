"""AppTest for the Overview's calibration section (a reliability diagram from 30 judged negatives, a count before),
the counts it shares with the labelling progress, and the run's headline."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.app.conftest import APP, RUN_ID, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _overview() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _judge(store, tiny_run: TinyRun, n: int, n_fn: int) -> None:
    """Judge the ``n`` likeliest labelled negatives of the run, the ``n_fn`` likeliest of them relevant."""
    preds = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    top = preds[preds["label"] == 0].sort_values("p_fn_given_neg", ascending=False).head(n)
    items = [
        {"query_id": str(q), "doc_id": str(d), "label": "relevant" if i < n_fn else "not_relevant", "annotator": "ana"}
        for i, (q, d) in enumerate(zip(top["query_id"], top["doc_id"], strict=True))
    ]
    with store() as s:
        db.save_judgments(s, "adi_copy", items, run_id=RUN_ID)


def _calibration_text(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def test_calibration_says_how_many_more_judgments_it_needs(tiny_run: TinyRun, store) -> None:
    at = _overview()  # the first run registers the dataset in the store
    assert any("0 judged so far, 30 more needed" in t for t in _calibration_text(at))
    _judge(store, tiny_run, 29, 10)
    at.run()
    assert any("29 judged so far, 1 more needed" in t for t in _calibration_text(at))
    assert not at.get("plotly_chart") and "Expected calibration error" not in [m.label for m in at.metric]


def test_calibration_draws_the_reliability_diagram_and_suggests_a_threshold(tiny_run: TinyRun, store) -> None:
    at = _overview()
    _judge(store, tiny_run, 40, 30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Judged negatives"] == "40" and metrics["Judged false negatives"] == "30"
    assert 0.0 <= float(metrics["Expected calibration error"]) <= 1.0
    assert len(at.get("plotly_chart")) == 1
    sentence = next(m.value for m in at.markdown if m.value.startswith("**Suggested threshold.**"))
    assert "were false negatives" in sentence and " judged" in sentence


def test_the_headline_names_the_dataset_and_encoder_and_shows_the_fits_warning(tiny_run: TinyRun) -> None:
    """Issue 25 item 17: a New project run showed its dataset as a full path, no encoder, "None" metrics in its
    Runs row, and the adapter's "only N held-out queries" warning only in the job's log."""
    at = _overview()
    captions = [c.value for c in at.caption]
    assert "dataset `adi_copy` (test split) · encoder `tiny_bert0`" in captions
    assert not any(str(tiny_run.dataset_dir) in c for c in captions)
    [warning] = [t for w in at.warning if "held-out queries choose the epoch" in (t := w.value.replace("\\", ""))]
    assert re.search(r"only \d+ held-out queries", warning) and "unreliable" in warning
    runs = next(d.value for d in at.dataframe if "kind" in d.value.columns).set_index("run")
    row = runs.loc[RUN_ID]
    assert row["dataset"] == "adi_copy" and row["nDCG@10"] == "—" and row["R@100"] == "—"
    assert float(row["adapter macro-F1"]) > 0


def test_confirmed_false_negatives_and_the_calibrations_count_are_one_count(tiny_run: TinyRun, store) -> None:
    """Issue 25 item 17: the Overview said 11 false negatives confirmed while calibration said 10 judged."""
    at = _overview()
    _judge(store, tiny_run, 40, 30)
    preds = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    tie = preds[preds["label"] == 0].sort_values("p_fn_given_neg", ascending=False).iloc[0]
    scored = set(zip(preds["query_id"].astype(str), preds["doc_id"].astype(str), strict=True))
    query = str(tie["query_id"])
    outside = next(d for d in map(str, range(1, 90)) if (query, d) not in scored)  # a pair the run never scored
    with store() as s:
        db.save_judgment(s, "adi_copy", str(tie["query_id"]), str(tie["doc_id"]), "not_relevant", "bo")  # a tie
        db.save_judgment(s, "adi_copy", query, outside, "relevant", "bo")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["False negatives confirmed"] == metrics["Judged false negatives"] == "29"
    with store() as s:  # an adjudication settles the tie, for both counts at once
        db.adjudicate(s, "adi_copy", str(tie["query_id"]), str(tie["doc_id"]), "relevant", "carol")
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["False negatives confirmed"] == metrics["Judged false negatives"] == "30"


def test_a_querys_labelled_positives_are_every_pair_its_rows_badge_so() -> None:
    """Issue 25 item 17: Hard negatives' "Labelled positives (N)" counted the dataset's qrels only, while its rows
    badge the run's own positive labels (a retrained run's carry the verdicts that turned a negative positive)."""
    from pages.common.labels_count import labelled_positives

    candidates = pd.DataFrame(
        {"doc_id": ["d9", "d1", "d3", "d4"], "label": [1, 1, 1, 0], "rank": [7, 0, 2, 1]}  # d3, d9: verdicts
    )
    assert labelled_positives({"d1": 1, "d2": 2, "d5": 0}, candidates) == ["d1", "d2", "d3", "d9"]
    assert labelled_positives({"d1": 1}, candidates.iloc[0:0]) == ["d1"]
