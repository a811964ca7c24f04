"""AppTest for the Training dynamics page on real tiny runs (phase 1, 2 and two phase-3 samplers) built by the core."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from rrra_core.analysis.dynamics import CATEGORY_LABELS
from tests.app.conftest import APP
from tests.core.analysis.test_comparison import PHASE1, PHASE2, RRRA, UNIFORM

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PAGE = "pages/analysis/training.py"


def _page(run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    if run_id is not None:
        at.selectbox(key="dyn_run").set_value(run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _chart(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert len(charts) == 1, [c.proto.id for c in at.get("plotly_chart")]
    return json.loads(charts[0].proto.spec)


def values(v: object) -> np.ndarray:
    """A Plotly spec array as numpy: Plotly sends numeric arrays as base64 typed arrays ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v)


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The one table showing all of ``columns`` (read-only tables carry no key in AppTest)."""
    found = [d.value for d in at.dataframe if set(columns) <= set(d.value.columns)]
    assert len(found) == 1, [list(d.value.columns) for d in at.dataframe]
    return found[0]


def _download_keys(at: AppTest) -> set[str]:
    return {b.proto.id.rsplit("-", 1)[-1] for b in at.get("download_button")}


def _log(runs: Path, run_id: str) -> list[dict]:
    return [json.loads(line) for line in (runs / run_id / "log.jsonl").read_text().splitlines()]


def test_phase1_loss_curve_is_the_logged_loss_and_epochs_show_the_evaluations(runs: Path) -> None:
    at = _page(PHASE1)
    at.slider(key="dyn_smooth").set_value(1).run()
    loss = next(t for t in _chart(at, "loss_chart")["data"] if t["name"] == "total loss")
    logged = [r for r in _log(runs, PHASE1) if "loss" in r]
    assert values(loss["x"]).tolist() == [r["step"] for r in logged]
    assert np.allclose(values(loss["y"]), [r["loss"] for r in logged])
    metrics = json.loads((runs / PHASE1 / "metrics.json").read_text())
    epochs = table_with(at, "epoch", "train loss (mean)")
    assert epochs["epoch"].tolist() == [0, 1, 2]  # epoch 0: the starting encoder
    assert np.allclose(epochs["nDCG@10"], [metrics["before"]["nDCG@10"]] + [e["nDCG@10"] for e in metrics["epochs"]])
    per_epoch = pd.DataFrame(logged).groupby("epoch")["loss"].mean()
    assert np.allclose(epochs["train loss (mean)"].iloc[1:], per_epoch.to_numpy())
    assert {"csv_epochs", "csv_steps"} <= _download_keys(at)
    assert {t["name"] for t in _chart(at, "epoch_chart")["data"]} == {"nDCG@10", "R@100"}


def test_smoothing_is_a_trailing_mean(runs: Path) -> None:
    at = _page(RRRA)
    at.slider(key="dyn_smooth").set_value(3).run()
    traces = {t["name"]: t for t in _chart(at, "loss_chart")["data"]}
    raw = values(traces["total loss (raw)"]["y"])
    smooth = values(traces["total loss"]["y"])
    assert smooth[0] == pytest.approx(raw[0]) and smooth[4] == pytest.approx(raw[2:5].mean())
    assert {"contrastive (InfoNCE)", "adapter cross-entropy"} <= set(traces)  # joint RRRA logs both parts


def test_gradient_analysis_overlays_the_sibling_samplers(runs: Path) -> None:
    at = _page(RRRA)
    assert at.multiselect(key="dyn_grad_runs").value == [RRRA, UNIFORM]  # same id prefix, phase 3 only
    box = _chart(at, "grad_box")["data"]
    assert [t["name"] for t in box] == ["rrra", "uniform"]
    summary = table_with(at, "sampler", "category", "share")
    for sampler in ("rrra", "uniform"):
        g = pd.read_parquet(runs / f"tiny-s0-phase3-{sampler}" / "gradients.parquet")
        hard = g[g["kind"] == "hard"]
        mine = summary[summary["sampler"] == sampler].set_index("category")
        assert mine.loc["all sampled negatives", "count"] == len(hard)
        assert mine.loc["all sampled negatives", "median"] == pytest.approx(hard["grad"].median())
        counts = hard["category"].value_counts()
        assert len(counts) >= 2 and counts["planted_fn"] > 0
        for cat, n in counts.items():
            assert mine.loc[CATEGORY_LABELS[cat], "count"] == n
            assert mine.loc[CATEGORY_LABELS[cat], "mean"] == pytest.approx(
                hard.loc[hard["category"] == cat, "grad"].mean()
            )
    over = _chart(at, "grad_over")
    assert {t["name"] for t in over["data"]} == {"rrra", "uniform"}
    assert {"csv_grad_summary", "csv_grad_over"} <= _download_keys(at)

    # Random negatives instead, and the temperature-free unit.
    at.radio(key="dyn_grad_kind").set_value("random").run()
    at.radio(key="dyn_grad_unit").set_value("p_j (softmax share)").run()
    summary = table_with(at, "sampler", "category", "share").set_index(["sampler", "category"])
    g = pd.read_parquet(runs / RRRA / "gradients.parquet")
    rand = g[g["kind"] == "random"]
    assert summary.loc[("rrra", "all sampled negatives"), "count"] == len(rand)
    assert summary.loc[("rrra", "all sampled negatives"), "mean"] == pytest.approx(
        rand["grad"].mean() * 0.05
    )  # τ = 0.05


def test_a_phase1_run_defaults_to_its_seeds_phase3_runs_and_a_pick_sticks(runs: Path) -> None:
    at = _page(PHASE1)
    assert at.multiselect(key="dyn_grad_runs").value == [RRRA, UNIFORM]
    at.multiselect(key="dyn_grad_runs").set_value([UNIFORM]).run()
    assert [t["name"] for t in _chart(at, "grad_box")["data"]] == ["uniform"]
    at.slider(key="dyn_smooth").set_value(2).run()
    assert at.multiselect(key="dyn_grad_runs").value == [UNIFORM]


def test_phase3_final_evaluation_and_phase2_epochs(runs: Path) -> None:
    at = _page(RRRA)
    final = table_with(at, "metric", "rerank gain").set_index("metric")
    metrics = json.loads((runs / RRRA / "metrics.json").read_text())["variants"]
    assert final.loc["nDCG@10", "retriever + adapter rerank"] == pytest.approx(metrics["rerank"]["nDCG@10"])
    assert final.loc["nDCG@10", "rerank gain"] == pytest.approx(
        metrics["rerank"]["nDCG@10"] - metrics["no_rerank"]["nDCG@10"]
    )
    at.selectbox(key="dyn_run").set_value(PHASE2).run()
    assert not at.exception
    epochs = table_with(at, "epoch", "train loss (mean)")
    history = json.loads((runs / PHASE2 / "metrics.json").read_text())["epochs"]
    assert np.allclose(epochs["val_macro_f1"], [e["val_macro_f1"] for e in history])


def test_no_runs_yet_says_so(isolated_home: Path) -> None:
    at = _page()
    assert any("No training run yet" in i.value for i in at.info)


def test_phase3_page_warns_about_queries_without_a_hard_negative(runs: Path) -> None:
    path = runs / UNIFORM / "metrics.json"
    metrics = json.loads(path.read_text())
    cov = metrics["train"]["without_hard_negative"]
    assert cov["queries"] > 0  # phase 3 records its pool coverage
    # This test's own copy of the run: give it two queries with nothing to sample, then none.
    cov.update(no_candidates=0, zero_weight=2)
    path.write_text(json.dumps(metrics))
    at = _page(UNIFORM)
    assert [w.value for w in at.warning if "hard negative" in w.value] == [
        f"In the last candidate pool, 2 of {cov['queries']} training queries had no hard negative to sample "
        "(2 because the sampler gave every candidate weight zero). They trained on in-batch negatives only."
    ]
    cov.update(zero_weight=0)
    path.write_text(json.dumps(metrics))
    at = _page(UNIFORM)
    assert not [w for w in at.warning if "hard negative" in w.value]
