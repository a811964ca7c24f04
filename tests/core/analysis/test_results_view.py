"""Result files as tidy tables: what the Ablations & baselines page draws, read back exactly as the benchmark wrote it.

The files here are built by the benchmark's own pieces (``detection_metrics``,
``detection_curves``, ``aggregate``) on small known inputs, so every expected
number can be checked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rrra_core.analysis.results_view import (
    ablation_table,
    curve_points,
    curves_source,
    detection_table,
    header,
    hitl_points,
    list_result_files,
    load_result,
    method_table,
    results_dir,
    wide_table,
)
from rrra_core.negatives.fn_detection import detection_curves, detection_metrics, thin_curve
from rrra_core.runtime.errors import DataError
from rrra_core.workflows.benchmark import aggregate


def _seed(seed: int, shift: float, hitl: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    truth = rng.random(400) < 0.1
    scores = {
        "retriever score": truth * 0.5 + rng.random(400),
        "adapter P(FN|neg) (full)": truth * 1.0 + rng.random(400),
        "adapter P(FN|neg) (no ratio)": truth * 0.2 + rng.random(400),
    }
    return {
        "seed": seed,
        "planted": int(truth.sum()),
        "methods": {
            "BM25": {"nDCG@10": 0.30, "R@1": 0.05},
            "uniform top-K": {"nDCG@10": 0.40 + shift, "R@1": 0.07},
            "RRRA reranking only": {"nDCG@10": 0.41 + shift, "R@1": 0.08},
            "ablation: no ratio (phase 1 + rerank)": {"nDCG@10": 0.35 + shift, "R@1": 0.06},
            "RRRA (resampling + reranking)": {"nDCG@10": 0.45 + shift, "R@1": 0.09},
        },
        "detection": {k: detection_metrics(truth, v) for k, v in scores.items()},
        "detection_curves": {k: detection_curves(truth, v) for k, v in scores.items()},
        "adapter_f1": {"full": {"macro_f1": 0.6 + shift, "F1 FN": 0.2}, "no ratio": {"macro_f1": 0.5, "F1 FN": 0.1}},
        "hitl": [{"N": 50, "found": 7, "nDCG@10": 0.46, "R@1": 0.1}, {"N": 0, "found": 0, "nDCG@10": 0.45, "R@1": 0.09}]
        if hitl
        else [],
        "runs": {"phase1": f"bench-x-s{seed}-phase1"},
    }


def _benchmark(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "command": "python scripts/benchmark.py --preset quick",
        "preset": "quick",
        "machine": {"cpu": "AMD EPYC", "cpu_count": 2, "torch_threads": 1},
        "config": {"dataset": "adi"},
        "seeds": seeds,
        "summary": aggregate(seeds),
        "wall_seconds": 90.0,
    }


@pytest.fixture()
def result_file(tmp_path: Path) -> Path:
    path = tmp_path / "rrra_x.json"
    path.write_text(json.dumps(_benchmark([_seed(0, 0.0, hitl=True), _seed(1, 0.02)])))
    return path


def test_methods_keep_file_order_with_mean_std_and_group(result_file: Path) -> None:
    r = load_result(result_file)
    long = method_table(r)
    ndcg = long[long["metric"] == "nDCG@10"].set_index("method")
    assert ndcg.loc["uniform top-K", "mean"] == pytest.approx(0.41)
    assert ndcg.loc["uniform top-K", "std"] == pytest.approx(np.std([0.40, 0.42], ddof=1))
    assert ndcg.loc["BM25", "group"] == "baseline" and ndcg.loc["RRRA (resampling + reranking)", "group"] == "RRRA"
    assert ndcg.loc["ablation: no ratio (phase 1 + rerank)", "group"] == "ablation"
    wide = wide_table(long, "method")
    assert list(wide.columns) == ["method", "nDCG@10", "nDCG@10 std", "R@1", "R@1 std"]
    assert list(wide["method"]) == list(r["summary"]["methods"])  # the file's order, not alphabetical


def test_one_seed_has_no_error_bar_rather_than_a_zero_one(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_benchmark([_seed(0, 0.0)])))
    long = method_table(load_result(path))
    assert long["n"].eq(1).all() and long["std"].isna().all()


def test_ablations_join_detection_f1_and_reranking_per_variant(result_file: Path) -> None:
    table = ablation_table(load_result(result_file)).set_index(["variant", "measure"])
    assert set(table.index.get_level_values("variant")) == {"full", "no ratio"}
    assert table.loc[("full", "nDCG@10 (rerank)"), "mean"] == pytest.approx(
        0.42
    )  # "RRRA reranking only" is the full adapter
    assert table.loc[("no ratio", "nDCG@10 (rerank)"), "mean"] == pytest.approx(0.36)
    assert table.loc[("no ratio", "F1 macro"), "mean"] == pytest.approx(0.5)
    assert ("full", "detection AUROC") in table.index and ("no ratio", "detection AP") in table.index


def test_detection_table_hides_scores_without_a_truth(tmp_path: Path) -> None:
    seed = _seed(0, 0.0)
    seed["detection"]["margin score"] = detection_metrics(np.zeros(10, dtype=bool), np.arange(10.0))  # nothing hidden
    path = tmp_path / "d.json"
    path.write_text(json.dumps(_benchmark([seed])))
    table = detection_table(load_result(path))
    assert "margin score" not in set(table["score"])
    assert set(table.loc[table["kind"] == "heuristic", "score"]) == {"retriever score"}


def test_curve_points_are_the_stored_curves_and_keep_their_auroc(result_file: Path) -> None:
    r = load_result(result_file)
    pts = curve_points(r)
    assert set(pts["seed"]) == {0, 1} and set(pts["curve"]) == {"ROC", "PR"}
    roc = pts[(pts["seed"] == 0) & (pts["score"] == "adapter P(FN|neg) (full)") & (pts["curve"] == "ROC")]
    stored = r["seeds"][0]["detection_curves"]["adapter P(FN|neg) (full)"]["roc"]
    assert roc["x"].tolist() == stored["fpr"] and roc["y"].tolist() == stored["tpr"]
    auroc = r["seeds"][0]["detection"]["adapter P(FN|neg) (full)"]["AUROC"]
    assert np.trapezoid(roc["y"], roc["x"]) == pytest.approx(auroc, abs=0.01)


def test_thinned_curves_keep_ends_shape_and_area() -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(20000) < 0.02
    scores = truth * 1.5 + rng.normal(size=20000)
    c = detection_curves(truth, scores, max_points=100)
    assert len(c["roc"]["fpr"]) <= 100 and len(c["pr"]["recall"]) <= 100
    assert np.trapezoid(c["roc"]["tpr"], c["roc"]["fpr"]) == pytest.approx(roc_auc_score(truth, scores), abs=0.005)
    assert c["prevalence"] == pytest.approx(truth.mean(), abs=1e-6)
    assert detection_curves(np.zeros(5, dtype=bool), np.arange(5.0)) is None  # no positives: no curve
    idx = thin_curve(np.linspace(0, 1, 1000), np.linspace(0, 1, 1000) ** 2, max_points=50)
    assert idx[0] == 0 and idx[-1] == 999 and len(idx) <= 50 and np.all(np.diff(idx) > 0)


def test_hitl_points_sorted_by_items_reviewed(result_file: Path) -> None:
    hitl = hitl_points(load_result(result_file))
    assert hitl["N"].tolist() == [0, 50] and hitl["found"].tolist() == [0, 7] and set(hitl["seed"]) == {0}


def test_header_names_command_machine_and_seeds(result_file: Path) -> None:
    h = header(load_result(result_file))
    assert h["command"] == "python scripts/benchmark.py --preset quick"
    assert (
        h["machine"] == "AMD EPYC, 2 CPUs, 1 torch thread(s) per process"
        and h["seeds"] == [0, 1]
        and h["kind"] == "benchmark"
    )


def test_listing_skips_other_json_but_keeps_broken_files(result_file: Path, tmp_path: Path) -> None:
    (tmp_path / "sweep.json").write_text(json.dumps({"command": "python scripts/sweep_rerank.py", "rows": []}))
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.json").write_text(result_file.read_text())
    names = [str(p.relative_to(tmp_path)) for p in list_result_files(tmp_path)]
    assert names == ["broken.json", "rrra_x.json", "parts/a.json"]
    assert list_result_files(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"command": "x", "rows": []}), "not a benchmark result file"),
        (
            json.dumps({"seeds": [], "summary": {"methods": {"BM25": {"nDCG@10": 0.3}}}}),
            "summary.methods['BM25']['nDCG@10'] must hold 'mean' and 'std'",
        ),
        (
            json.dumps(
                {
                    "seeds": [
                        {
                            "seed": 0,
                            "detection_curves": {
                                "s": {"roc": {"fpr": [0, 1], "tpr": [0]}, "pr": {"recall": [1], "precision": [0.1]}}
                            },
                        }
                    ],
                    "summary": {},
                }
            ),
            "seed 0, 's': ROC curve needs equal-length 'fpr' and 'tpr' lists",
        ),
        (
            json.dumps({"seeds": [{"seed": 0, "hitl": [{"found": 1}]}], "summary": {}}),
            "seed 0: each hitl entry needs 'N'",
        ),
    ],
)
def test_malformed_files_raise_one_line_data_errors(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        r = load_result(path)
        curve_points(r)
        hitl_points(r)
    assert str(err.value).startswith(f"{path}: ") and reason in str(err.value) and "\n" not in str(err.value)


def test_curves_come_from_the_file_or_its_recomputed_companion(result_file: Path, tmp_path: Path) -> None:
    r = load_result(result_file)
    assert curves_source(result_file, r) == result_file
    bare = json.loads(result_file.read_text())
    for s in bare["seeds"]:
        s.pop("detection_curves")
    old = tmp_path / "rrra_old.json"
    old.write_text(json.dumps(bare))
    assert curves_source(old, load_result(old)) is None
    companion = tmp_path / "rrra_old_detection_curves.json"
    companion.write_text("{}")
    assert curves_source(old, load_result(old)) == companion


def test_results_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRRA_RESULTS", str(tmp_path))
    assert results_dir() == tmp_path.resolve()
    monkeypatch.delenv("RRRA_RESULTS")
    assert results_dir().name == "results" and (results_dir().parent / "rrra_core").is_dir()
