"""The Review queue says why the learnt order orders as it does (issue 26 item 4): each signal's belief, the
verdicts it rests on, the learnt boost, and the last 20 items' hit rate beside the best single order's."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rrra_core.review.versions import review_dir, write_version
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXPLAIN = {
    "best": "adapter",
    "boost": {"per_false_negative": 0.0, "per_rejection": -0.25},
    "arms": {
        "adapter": {"belief": 0.31, "hits": 9, "verdicts": 27, "cold_start": 0.4, "planned": 6},
        "bm25": {"belief": 0.12, "hits": 2, "verdicts": 14, "cold_start": -0.2, "planned": 1},
        "model": {"belief": 0.22, "hits": 5, "verdicts": 21, "cold_start": 0.1, "planned": 3},
    },
    "recent": {"n": 20, "hits": 5, "best_static": "adapter", "best_static_n": 20, "best_static_hits": 7},
}


def test_the_learnt_order_shows_each_signals_belief_and_the_recent_hit_rates(tiny_run: TinyRun) -> None:
    preds = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    scores = preds[preds["label"] == 0][["query_id", "doc_id"]].astype(str).assign(score=0.0)
    empty = pd.DataFrame({"query_id": [], "doc_id": [], "verdict": []}).astype({"verdict": bool})
    model = {"n_verdicts": 40, "n_judged": 0, "note": "test", "order": "bandit", "explain": EXPLAIN}
    write_version(review_dir(tiny_run.run_dir), model, scores, empty)
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page("pages/label/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.dataframe) == 1, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert list(table["signal"]) == ["Adapter P(FN|neg)", "Model fitted on the verdicts", "BM25"]  # belief first
    assert list(table["verdicts it rests on"]) == [27, 21, 14]
    assert list(table["followed"]) == ["✓", "", ""]
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "Last 20 judged items: 5 false negatives (25%)" in text
    assert "on the last 20 judged items it would have shown: 7 (35%)" in text
    assert "-0.25 per rejection" in text
