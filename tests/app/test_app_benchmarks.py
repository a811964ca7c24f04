"""AppTest for the Ablations & baselines page, on result files written by the real benchmark and curve commands.

Once per session the tiny benchmark runs (``scripts/benchmark.py`` with the tiny
random BERT on ADI, 2 seeds), and an "old" copy without curve points gets its
companion from ``scripts/detection_curves.py``, as the Cranfield results did.
Each test points ``$RRRA_RESULTS`` at its own folder of those files.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP
from tests.scripts.test_detection_curves import _script, run_tiny_benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PAGE = "pages/analysis/benchmarks.py"


@dataclass(frozen=True)
class BenchFiles:
    tiny: Path  # a benchmark file with curve points (written by scripts/benchmark.py)
    old: Path  # the same without curve points, as files written before they were stored
    companion: Path  # old's curves, recomputed by scripts/detection_curves.py from the run folders


@pytest.fixture(scope="session")
def bench_files(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> BenchFiles:
    bench = run_tiny_benchmark(tiny_model_dir_session, tmp_path_factory.mktemp("bench_app"))
    data = json.loads(bench.json.read_text())
    for seed in data["seeds"]:
        seed.pop("detection_curves")
    old = bench.results / "rrra_old.json"
    old.write_text(json.dumps(data))
    out = _script(
        "detection_curves.py", [str(old), "--out", str(bench.results / "rrra_old_detection_curves")], bench.home
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return BenchFiles(tiny=bench.json, old=old, companion=bench.results / "rrra_old_detection_curves.json")


def _folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, Path | str]) -> Path:
    folder = tmp_path / "results"
    folder.mkdir()
    for name, src in files.items():
        if isinstance(src, Path):
            shutil.copy(src, folder / name)
        else:
            (folder / name).write_text(src)
    monkeypatch.setenv("RRRA_RESULTS", str(folder))
    return folder


def _page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _arr(v: Any) -> np.ndarray:
    """A Plotly array from the figure JSON (Plotly 6 writes numeric arrays as base64 'bdata')."""
    if isinstance(v, dict) and "bdata" in v:
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
    return np.asarray(v)


def _charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Every Plotly chart on the page by its SVG file name: {name: figure dict}."""
    out = {}
    for el in at.get("plotly_chart"):
        config = json.loads(el.proto.config)
        assert config["toImageButtonOptions"]["format"] == "svg"
        out[config["toImageButtonOptions"]["filename"]] = json.loads(el.proto.spec)
    return out


def _bars(fig: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """{bar label: (height, error bar)} across the figure's traces."""
    out = {}
    for tr in fig["data"]:
        errors = _arr(tr["error_y"]["array"]) if "array" in tr.get("error_y", {}) else [np.nan] * len(tr["x"])
        out.update({x: (float(y), float(e)) for x, y, e in zip(tr["x"], _arr(tr["y"]), errors)})
    return out


def _table(at: AppTest, first_column: str) -> Any:
    """The page's table whose first column is ``first_column``.

    A display-only st.dataframe has no key to find it by.
    """
    found = [d.value for d in at.dataframe if len(d.value.columns) and d.value.columns[0] == first_column]
    assert len(found) == 1, [list(d.value.columns[:2]) for d in at.dataframe]
    return found[0]


def _mean(result: dict[str, Any], section: str, name: str, metric: str) -> float:
    return result["summary"][section][name][metric]["mean"]


def test_default_file_shows_its_command_tables_and_every_chart(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, monkeypatch, {"a_first.json": bench_files.old, "rrra_cranfield.json": bench_files.tiny})
    result = json.loads(bench_files.tiny.read_text())
    at = _page()
    assert at.selectbox(key="bench_file").value == "rrra_cranfield.json"  # the Cranfield file is the default
    assert at.code[0].value == result["command"] and "--model" in result["command"]
    assert any("AMD" in c.value or "CPUs" in c.value for c in at.caption)
    table = _table(at, "method").set_index("method")
    assert table.loc["BM25", "nDCG@10"] == pytest.approx(_mean(result, "methods", "BM25", "nDCG@10"))
    assert table.loc["RRRA (resampling + reranking)", "R@1 std"] == pytest.approx(
        result["summary"]["methods"]["RRRA (resampling + reranking)"]["R@1"]["std"]
    )
    charts = _charts(at)
    assert set(charts) == {
        "rrra_cranfield_methods_nDCG@10",
        "rrra_cranfield_ablations_detection AUROC",
        "rrra_cranfield_pr_seed0",
        "rrra_cranfield_roc_seed0",
        "rrra_cranfield_hitl_nDCG@10",
    }
    bars = _bars(charts["rrra_cranfield_methods_nDCG@10"])
    assert not any(m.startswith("ablation:") for m in bars)  # ablations have their own chart
    assert bars["uniform top-K"][0] == pytest.approx(_mean(result, "methods", "uniform top-K", "nDCG@10"))
    assert bars["uniform top-K"][1] == pytest.approx(result["summary"]["methods"]["uniform top-K"]["nDCG@10"]["std"])
    assert [b.label for b in at.get("download_button")].count(
        "Download CSV"
    ) == 4  # methods, ablations, detection, HITL
    assert any("curve points" in b.label for b in at.get("download_button"))


def test_metric_and_measure_choices_redraw_the_bars(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, monkeypatch, {"rrra_tiny.json": bench_files.tiny})
    result = json.loads(bench_files.tiny.read_text())
    at = _page()
    at.selectbox(key="bench_metric_rrra_tiny").set_value("R@1").run()
    bars = _bars(_charts(at)["rrra_tiny_methods_R@1"])
    assert bars["BM25"][0] == pytest.approx(_mean(result, "methods", "BM25", "R@1"))
    at.selectbox(key="bench_ablation_measure_rrra_tiny").set_value("nDCG@10 (rerank)").run()
    bars = _bars(_charts(at)["rrra_tiny_ablations_nDCG@10 (rerank)"])
    assert bars["full"][0] == pytest.approx(_mean(result, "methods", "RRRA reranking only", "nDCG@10"))
    assert bars["no residual"][0] == pytest.approx(
        _mean(result, "methods", "ablation: no residual (phase 1 + rerank)", "nDCG@10")
    )
    ablations = _table(at, "variant").set_index("variant")
    assert ablations.loc["no residual", "detection AUROC"] == pytest.approx(
        _mean(result, "detection", "adapter P(FN|neg) (no residual)", "AUROC")
    )


def test_detection_curves_follow_the_seed_and_scores_chosen(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, monkeypatch, {"rrra_tiny.json": bench_files.tiny})
    result = json.loads(bench_files.tiny.read_text())
    at = _page()
    roc = _charts(at)["rrra_tiny_roc_seed0"]
    assert [t["name"] for t in roc["data"]] == [
        "retriever score",
        "SimANS score",
        "margin score",
        "adapter P(FN|neg) (full)",
        "random",
    ]
    at.selectbox(key="bench_curve_seed_rrra_tiny").set_value(1).run()
    at.multiselect(key="bench_curve_scores_rrra_tiny").set_value(["adapter P(FN|neg) (no residual)"]).run()
    charts = _charts(at)
    stored = result["seeds"][1]["detection_curves"]["adapter P(FN|neg) (no residual)"]
    roc, pr = charts["rrra_tiny_roc_seed1"], charts["rrra_tiny_pr_seed1"]
    assert [t["name"] for t in roc["data"]] == ["adapter P(FN|neg) (no residual)", "random"]
    assert (
        _arr(roc["data"][0]["x"]).tolist() == stored["roc"]["fpr"]
        and _arr(roc["data"][0]["y"]).tolist() == stored["roc"]["tpr"]
    )
    assert _arr(pr["data"][0]["x"]).tolist() == stored["pr"]["recall"]
    detection = _table(at, "score").set_index("score")
    assert detection.loc["margin score", "AP"] == pytest.approx(_mean(result, "detection", "margin score", "AP"))


def test_human_in_the_loop_curve_plots_each_review_size(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, monkeypatch, {"rrra_tiny.json": bench_files.tiny})
    result = json.loads(bench_files.tiny.read_text())
    at = _page()
    fig = _charts(at)["rrra_tiny_hitl_nDCG@10"]
    assert _arr(fig["data"][0]["x"]).tolist() == [row["N"] for row in result["seeds"][0]["hitl"]] == [0, 5]
    assert _arr(fig["data"][0]["y"]).tolist() == pytest.approx([row["nDCG@10"] for row in result["seeds"][0]["hitl"]])
    assert _table(at, "seed")["found"].tolist() == [row["found"] for row in result["seeds"][0]["hitl"]]


def test_an_old_file_draws_the_curves_recomputed_from_its_runs(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(
        tmp_path,
        monkeypatch,
        {"rrra_old.json": bench_files.old, "rrra_old_detection_curves.json": bench_files.companion},
    )
    at = _page()
    assert at.selectbox(key="bench_file").value == "rrra_old.json"
    assert any("rrra\\_old\\_detection\\_curves\\.json" in c.value for c in at.caption)
    companion = json.loads(bench_files.companion.read_text())
    roc = _charts(at)["rrra_old_roc_seed0"]
    assert (
        _arr(roc["data"][0]["x"]).tolist() == companion["seeds"][0]["detection_curves"]["retriever score"]["roc"]["fpr"]
    )
    # The recomputation itself: its command, its source's command, and the check that they agree.
    at.selectbox(key="bench_file").set_value("rrra_old_detection_curves.json").run()
    assert not at.exception
    assert [c.value for c in at.code] == [companion["command"], companion["source"]["command"]]
    assert any("match the source file" in s.value for s in at.success)
    assert any("no retrieval results" in i.value for i in at.info)


def test_broken_and_missing_files_explain_themselves(
    bench_files: BenchFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(
        tmp_path,
        monkeypatch,
        {
            "broken.json": '{"seeds": [], "summary": {"methods": {"BM25": {"nDCG@10": 0.3}}}}',
            "sweep.json": json.dumps({"command": "python scripts/sweep_rerank.py", "rows": []}),
        },
    )
    at = _page()
    assert at.selectbox(key="bench_file").options == ["broken.json"]  # other kinds of JSON are not offered
    shown = at.error[0].value.replace("\\", "")  # the message is Markdown-escaped: names in a file are data
    assert len(at.error) == 1 and "broken.json: summary.methods['BM25']['nDCG@10'] must hold 'mean' and 'std'" in shown
    monkeypatch.setenv("RRRA_RESULTS", str(tmp_path / "nowhere"))
    at = _page()
    assert any("No benchmark result files" in i.value and "scripts/benchmark.py" in i.value for i in at.info)


@pytest.fixture(scope="session")
def hitl_file(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quick human-in-the-loop benchmark's result, written by scripts/bench_hitl.py with the tiny encoder."""
    import os

    import bench_hitl

    root = tmp_path_factory.mktemp("hitl_app")
    old = os.environ.get("RRRA_HOME")
    os.environ["RRRA_HOME"] = str(root / "home")
    try:
        args = ["--quick", "--model", str(tiny_model_dir_session), "--out", str(root / "hitl_tiny"), "--seeds", "0"]
        assert bench_hitl.main([*args]) == 0
        assert bench_hitl.main([*args, "--render"]) == 0
    finally:
        os.environ.pop("RRRA_HOME") if old is None else os.environ.__setitem__("RRRA_HOME", old)
    return root / "hitl_tiny.json"


def test_the_human_in_the_loop_benchmark_draws_error_bars_and_both_bounds(
    bench_files: BenchFiles, hitl_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _folder(tmp_path, monkeypatch, {"rrra_tiny.json": bench_files.tiny, "hitl_tiny.json": hitl_file})
    result = json.loads(hitl_file.read_text())
    at = _page()
    fig = _charts(at)["hitl_tiny_nDCG@10"]
    learnt = next(t for t in fig["data"] if t["name"] == "learnt order")
    points = result["result"]["points"]
    assert _arr(learnt["x"]).tolist() == [5, 10]
    assert _arr(learnt["y"]).tolist() == pytest.approx([points[f"learnt-n{n}"]["nDCG@10"]["mean"] for n in (5, 10)])
    assert "array" in learnt["error_y"]  # error bars (one seed here: zero width)
    lines = [s for s in fig["layout"]["shapes"] if s.get("type") == "line"]
    assert sorted(round(s["y0"], 6) for s in lines) == sorted(
        round(points[b]["nDCG@10"]["mean"], 6) for b in ("lower", "upper")
    )
    assert any("recovered" in c.value for c in at.caption)


@pytest.fixture(scope="session")
def fair_file(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fair comparison (one seed, two trials per method) written by the real workflow with the tiny encoder."""
    import os

    from rrra_core.workflows.fair import read_parts, run_seed
    from rrra_core.workflows.fair_report import write_result
    from tests.core.workflows.test_fair import _cfg as fair_config

    root = tmp_path_factory.mktemp("fair_app")
    old = os.environ.get("RRRA_HOME")
    os.environ["RRRA_HOME"] = str(root / "home")
    try:
        cfg = fair_config(tiny_model_dir_session, seeds=(0,))
        run_seed(cfg, "adi", 0, root / "parts")
        write_result(root / "fair_adi", read_parts(root / "parts"), "python scripts/benchmark.py --preset fair-x")
    finally:
        if old is None:
            os.environ.pop("RRRA_HOME", None)
        else:
            os.environ["RRRA_HOME"] = old
    return root / "fair_adi.json"


def test_the_fair_comparison_tab_shows_the_verdict_tests_and_tuning(
    fair_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minimal = json.dumps({"seeds": [{"seed": 0}], "summary": {"methods": {}}})  # the page opens on a benchmark file
    _folder(tmp_path, monkeypatch, {"rrra_min.json": minimal, "fair_adi.json": fair_file})
    result = json.loads(fair_file.read_text())
    at = _page()
    frames = [df.value for df in at.dataframe]
    methods = next(v for v in frames if "method" in v.columns and "nDCG@10" in v.columns and "trial" not in v)
    assert methods["method"].tolist() == list(result["methods"])
    tuning = next(v for v in frames if "chosen" in v.columns)
    assert len(tuning) == sum(len(t) for t in result["tuning"]["trials"].values())
    assert tuning["chosen"].sum() == len(result["tuning"]["chosen"])
    assert any("full RRRA" in m.value for m in at.markdown)
    assert any("--preset fair-x" in c.value for c in at.code)
