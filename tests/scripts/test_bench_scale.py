"""The scale benchmark's code path at a small size (the speed itself is measured by scripts/bench_scale.py), and the
refit from the store learning exactly what the refit from the whole frame learnt."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.run_reader import open_store
from rrra_core.review import candidates_frame
from rrra_core.review.refit import (
    ARMS_DIR,
    FRAME_DIR,
    RefitConfig,
    arm_cache,
    fit_version,
    read_run_predictions,
    store_frame,
)
from rrra_core.runtime.paths import REPO_ROOT
from rrra_core.speed.scale_app import prepare


def test_the_benchmark_writes_its_summary_and_tables(tmp_path: Path) -> None:
    out = tmp_path / "scale"
    args = ["--sizes", "20000", "--no-before", "--root", str(tmp_path / "runs"), "--out", str(out)]
    script = [sys.executable, "scripts/bench_scale.py", *args]
    done = subprocess.run(script, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    summary = result["summary"]
    for key in ("first_view_s", "switch_p95_s", "judgment_p95_s", "app_rss_gb", "refit_s"):
        assert isinstance(summary[key], float) and summary[key] > 0, (key, result["sizes"])
    # The Disagreements page's pairs, the map's sample and the Overview note's overlap: timed from the store.
    [size] = result["sizes"]
    for key in ("disagreements_p95_s", "map_sample_s"):
        assert isinstance(size["after"][key], float) and size["after"][key] > 0, (key, size)
    assert size["overlap"]["pool_overlap_s"] >= 0, size
    assert result["command"].startswith("python scripts/bench_scale.py")
    text = out.with_suffix(".md").read_text()
    assert text.startswith("<!-- command: python scripts/bench_scale.py")
    assert "# The app at 20,000 scored candidates" in text and "disagreements page p95" in text


def test_the_refit_from_the_store_is_the_refit_from_the_whole_frame(tmp_path: Path) -> None:
    run, _ = prepare(tmp_path, 6000)
    source = store_frame(run)
    features = ["bm25", "q_coverage", "q_idf_coverage", "rare_idf", "pos_sim", "bm25_rank"]
    whole = candidates_frame(read_run_predictions(run), {})
    whole = pd.concat([whole, source.frame[features].reset_index(drop=True)], axis=1)
    rows = open_store(run).negative_rows(np.arange(0, open_store(run).n_negatives, 7))
    verdicts = {(q, d): i % 3 == 0 for i, (q, d) in enumerate(zip(rows["query_id"], rows["doc_id"], strict=True))}
    cfg = RefitConfig()
    model_a, scores_a, used_a = fit_version(whole, verdicts, cfg)
    model_b, scores_b, used_b = fit_version(source.frame, verdicts, cfg, source=source)
    assert model_a["explain"] == model_b["explain"] and model_a["verdicts_hash"] == model_b["verdicts_hash"]
    assert "query_id" not in scores_b.columns  # keyed by the store's rows, which hold the ids
    ids_b = open_store(run).rows_at(scores_b["row"].to_numpy())
    assert list(scores_a["query_id"]) == list(ids_b["query_id"].astype(str))
    assert list(scores_a["doc_id"]) == list(ids_b["doc_id"].astype(str))
    np.testing.assert_allclose(scores_a["score"], scores_b["score"])
    pd.testing.assert_frame_equal(used_a, used_b, check_dtype=False)


def test_a_refit_on_the_saved_arms_is_the_refit_that_ranks_them_afresh(tmp_path: Path) -> None:
    """The arms saved beside the features (as the first refit saves them) change nothing a refit writes."""
    run, _ = prepare(tmp_path, 6000)  # builds the arm cache as the first refit on these features would
    assert (run / ARMS_DIR / "index.json").is_file()
    source = store_frame(run)
    rows = open_store(run).negative_rows(np.arange(3, open_store(run).n_negatives, 11))
    verdicts = {(q, d): i % 4 == 0 for i, (q, d) in enumerate(zip(rows["query_id"], rows["doc_id"], strict=True))}
    cfg = RefitConfig()
    saved = arm_cache(run, source)
    assert saved.saved, "the cache was not read back"
    model_a, scores_a, used_a = fit_version(source.frame, verdicts, cfg, source=source)
    model_b, scores_b, used_b = fit_version(source.frame, verdicts, cfg, source=source, ranks=saved)
    for model in (model_a, model_b):
        model.pop("created_at")
    assert model_a == model_b
    pd.testing.assert_frame_equal(scores_a, scores_b, check_exact=True)
    pd.testing.assert_frame_equal(used_a, used_b)
    # arms saved for other features are not taken up
    assert not arm_cache(run, dataclasses.replace(source, features_key="other")).saved


def test_a_refit_on_the_saved_frame_is_the_refit_on_a_frame_made_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store frame saved as arrays (as the first refit saves it) is the frame made from the store, and a
    damaged copy is made again."""
    import shutil

    import rrra_core.review.refit as refit

    run, _ = prepare(tmp_path, 6000)
    assert (run / FRAME_DIR / "index.json").is_file()  # the arm cache's build made and saved the frame
    shutil.rmtree(run / FRAME_DIR)
    fresh = store_frame(run)  # made from the store and the features, then saved
    made = refit._frame_from_store
    monkeypatch.setattr(refit, "_frame_from_store", lambda *a, **k: pytest.fail("made afresh, not read back"))
    saved = store_frame(run)  # mapped back
    pd.testing.assert_frame_equal(fresh.frame, saved.frame, check_exact=True)
    np.testing.assert_array_equal(fresh.frame_index, saved.frame_index)
    assert list(fresh.doc_ids) == list(saved.doc_ids) and list(fresh.query_ids) == list(saved.query_ids)
    rows = open_store(run).negative_rows(np.arange(5, open_store(run).n_negatives, 13))
    verdicts = {(q, d): i % 3 == 0 for i, (q, d) in enumerate(zip(rows["query_id"], rows["doc_id"], strict=True))}
    model_a, scores_a, _ = fit_version(fresh.frame, verdicts, RefitConfig(), source=fresh)
    model_b, scores_b, _ = fit_version(saved.frame, verdicts, RefitConfig(), source=saved)
    assert model_a["explain"] == model_b["explain"]
    pd.testing.assert_frame_equal(scores_a, scores_b, check_exact=True)
    calls: list[int] = []
    monkeypatch.setattr(refit, "_frame_from_store", lambda *a, **k: calls.append(1) or made(*a, **k))
    # a damaged array: made again, the same, and saved whole again
    (run / FRAME_DIR / "0.npy").write_bytes(b"cut")
    pd.testing.assert_frame_equal(fresh.frame, store_frame(run).frame, check_exact=True)
    assert calls == [1] and np.load(run / FRAME_DIR / "0.npy").shape == (len(fresh.frame),)
    # (a features file cut short: the saved frame is not taken: tests/scripts/test_refit_queue.py, on a real corpus)
