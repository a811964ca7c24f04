"""The pages that show a run's candidates read its store, never the whole predictions frame (issue 27 item 4).

Each test builds the run's store (as the first page view does), then damages
``predictions.parquet`` in place, keeping its size and modification time: the
store still counts as current, and any read of the whole file fails with a
one-line ``DataError``. Disagreements, the Overview's note on a retrained run
and the Embedding map (its page and its job) still show what they showed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import db
from rrra_core.analysis.candidates import read_predictions
from rrra_core.analysis.projection import ProjectionConfig, Scope, compute_projection
from rrra_core.analysis.run_reader import open_store, store_is_current
from rrra_core.runtime.errors import DataError
from rrra_core.runtime.runs import open_run
from tests.app.conftest import APP, RUN_ID, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _unreadable_keeping_its_stamp(run_dir: Path) -> None:
    """Zero the run's predictions file, same size and mtime: its store stays current, a whole read fails."""
    open_store(run_dir)
    path = run_dir / "predictions.parquet"
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert store_is_current(run_dir)
    with pytest.raises(DataError, match="damaged"):
        read_predictions(path)


def _app(page: str | None = None, run: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    if run is not None:
        at.selectbox(key="sb_run").set_value(run).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_disagreements_show_each_pairs_model_view_from_the_store(tiny_run: TinyRun) -> None:
    preds = read_predictions(tiny_run.run_dir / "predictions.parquet")
    picked = pd.concat([preds[preds["label"] == 1].head(1), preds[preds["label"] == 0].iloc[[3]]])
    scored = set(zip(preds["query_id"], preds["doc_id"], strict=True))
    q = str(picked["query_id"].iloc[0])
    unscored = next((str(d) for d in preds["doc_id"].unique() if (q, d) not in scored), None)
    with db.session_factory(db.init_db())() as s:
        name = db.ensure_dataset(s, str(tiny_run.dataset_dir)).name
        pairs = [*zip(picked["query_id"], picked["doc_id"], strict=True)] + ([(q, unscored)] if unscored else [])
        for pq, pd_ in pairs:
            db.save_judgment(s, name, str(pq), str(pd_), "relevant", "alice")
            db.save_judgment(s, name, str(pq), str(pd_), "not_relevant", "bob")
    _unreadable_keeping_its_stamp(tiny_run.run_dir)

    at = _app("pages/label/disagreements.py")
    md = [m.value for m in at.markdown]
    assert any(f"{len(pairs)} open of {len(pairs)}" in h.value for h in at.subheader)
    for row in picked.to_dict("records"):
        kind = "labelled positive" if row["label"] > 0 else "labelled negative"
        line = f"{kind} · rank #{int(row['rank']) + 1}"
        assert any(line in m and f"P(rel) {row['p_rel']:.3f}" in m for m in md), (line, md)
    if unscored:
        assert any("not among run" in m and "candidates" in m for m in md), md


def test_the_overview_note_on_a_retrained_run_comes_from_the_two_stores(tiny_run: TinyRun) -> None:
    from tests.app.test_app_retrain import _finished_retrain

    run = _finished_retrain(tiny_run, "term-joint", {"before": None, "after": None})
    preds = pd.read_parquet(run.file("predictions.parquet"))
    preds["p_fn_given_neg"] = 0.9
    preds.iloc[:10].to_parquet(run.file("predictions.parquet"))  # a smaller pool than the base's, all suspects
    base = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    base_suspects = int(((base["label"] == 0) & (base["p_fn_given_neg"] >= 0.5)).sum())
    shared_base = base.iloc[:10]
    was = int(((shared_base["label"] == 0) & (shared_base["p_fn_given_neg"] >= 0.5)).sum())
    n_neg = int((preds.iloc[:10]["label"] == 0).sum())
    for folder in (run.path, tiny_run.run_dir):
        _unreadable_keeping_its_stamp(folder)

    at = _app(run="term-joint")
    [note] = [t for c in at.caption if "Its base run adi-tiny" in (t := c.value.replace("\\", ""))]
    assert f"has {base_suspects:,} at this threshold, this run {n_neg:,}" in note
    assert "10 of this run's 10 candidates are in the base's pool too" in note
    assert f"of those, {was:,} are suspects by the base's scores and {n_neg:,} by this run's" in note


def test_the_embedding_map_and_its_job_read_the_plotted_queries_rows_only(tiny_run: TinyRun) -> None:
    _unreadable_keeping_its_stamp(tiny_run.run_dir)
    small = ProjectionConfig(top_k=12, n_epochs=60, global_queries=5, global_docs=40)
    run = open_run(RUN_ID)
    one = compute_projection(run, Scope(tiny_run.first_query), small)
    sample = compute_projection(run, Scope(), small)
    # The readings on the points are the store's rows of those queries.
    store = open_store(tiny_run.run_dir)
    cands = store.candidates(tiny_run.first_query).set_index("doc_id")
    shown = one.points[one.points["kind"] == "candidate"].set_index("doc_id")
    assert len(shown) >= 12 and (shown["p_rel"] == cands.loc[shown.index, "p_rel"]).all()
    assert (sample.points["kind"] == "query").sum() == 5

    at = _app("pages/analysis/embedding_map.py")
    assert len(at.get("plotly_chart")) == 1  # the query's map, drawn: made from the current (damaged) file
    picker = at.selectbox(key="_map_query")
    assert picker.label == f"Query ({len(store.query_ids):,} scored)" and picker.value == tiny_run.first_query
