"""Run comparison: per-query results written by training, side-by-side metrics, helped/hurt queries.

``build_tiny_runs`` trains, with the tiny random BERT on ADI, one benchmark
seed's worth of runs (phase 1, the phase-2 adapter, phase 3 with the RRRA and
uniform samplers) under one id prefix. The app and script tests reuse it; the
runs are built once per pytest session (a marker file in the session's base
temp folder) and copied wherever a test needs them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.comparison import (
    PER_QUERY_FILE,
    classify_changes,
    config_differences,
    default_variant,
    eval_settings,
    parse_per_query,
    per_query_deltas,
    per_query_record,
    run_metric_variants,
    side_by_side,
    sign_test_p,
    summarize_changes,
)
from rrra_core.retrieval.evaluation import DEFAULT_METRICS, evaluate
from rrra_core.runtime.errors import ConfigError, DataError

PREFIX = "tiny-s0-"
PHASE1 = PREFIX + "phase1"
PHASE2 = PREFIX + "phase2-full"
RRRA = PREFIX + "phase3-rrra"
UNIFORM = PREFIX + "phase3-uniform"
# ADI query 1, rewritten so every page must show it inertly.
HOSTILE_QUERY_ID = "1"
HOSTILE_QUERY = "Hostile <b>bold</b> [phish](http://evil.example) <img src=x onerror=alert(1)>"


def _rewrite_query(path: Path, qid: str, text: str) -> None:
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    assert any(r["_id"] == qid for r in rows)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({**r, "text": text} if r["_id"] == qid else r) + "\n")


@dataclass(frozen=True)
class TinyRuns:
    """Finished run folders under ``runs_dir``, trained on ``dataset_dir``.

    ``runs_dir`` is a ``runs/`` folder to copy into an RRRA_HOME.
    """

    runs_dir: Path
    dataset_dir: Path

    def path(self, run_id: str) -> Path:
        return self.runs_dir / run_id


def build_tiny_runs(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> TinyRuns:
    """Phase 1 → phase 2 → phase 3 (rrra, uniform) on ADI with the tiny model, once per session."""
    base = tmp_path_factory.getbasetemp() / "tiny_analysis_home"
    runs_dir = base / "runs"
    if (base / "done").is_file():
        return TinyRuns(runs_dir, base / "adi_hostile")
    from rrra_core.adapter import AdapterFitConfig, LabelConfig
    from rrra_core.data import dataset_folder
    from rrra_core.negatives.mining import MiningConfig
    from rrra_core.retrieval.encoder import EncoderConfig
    from rrra_core.runtime.runs import create_run
    from rrra_core.training.phase1 import Phase1Config, phase1_config_dict, train_phase1
    from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2
    from rrra_core.training.phase3 import Phase3Config, phase3_config_dict, train_phase3

    shutil.rmtree(base, ignore_errors=True)
    data_dir = base / "adi_hostile"
    shutil.copytree(dataset_folder("adi"), data_dir)
    _rewrite_query(data_dir / "queries.jsonl.gz", HOSTILE_QUERY_ID, HOSTILE_QUERY)
    dataset = str(data_dir)
    old_home = os.environ.get("RRRA_HOME")
    os.environ["RRRA_HOME"] = str(base)  # embedding caches go here too, not into the checkout
    try:
        enc0 = EncoderConfig(model=str(model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=32)
        p1 = Phase1Config(
            dataset=dataset,
            train_split="test",
            eval_split="test",
            epochs=2,
            batch_size=8,
            max_train_queries=8,
            eval_k=30,
            checkpoint_every=0,
        )
        run1 = create_run("phase1", phase1_config_dict(enc0, p1, MiningConfig()), run_id=PHASE1, root=runs_dir)
        train_phase1(run1, enc0, p1)
        enc1 = EncoderConfig(model=str(run1.path), query_max_length=16, doc_max_length=32, encode_batch_size=32)
        p2 = Phase2Config(
            dataset=dataset,
            train_split="test",
            labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
            fit=AdapterFitConfig(epochs=2, batch_size=64),
        )
        run2 = create_run("phase2", phase2_config_dict(enc1, p2), run_id=PHASE2, root=runs_dir)
        train_phase2(run2, enc1, p2)
        adapter = str(run2.file("adapter"))
        # "Planted" false negatives only label the gradient log: calling every document of a few
        # queries one guarantees the log has that category next to "other".
        from rrra_core.data import load_dataset

        data = load_dataset(dataset, "test")
        planted = {q: set(data.corpus) for q in sorted(data.qrels)[:6]}
        for sampler, run_id in (("rrra", RRRA), ("uniform", UNIFORM)):
            cfg = Phase3Config(
                dataset=dataset,
                train_split="test",
                eval_split="test",
                sampler=sampler,
                epochs=2,
                batch_size=8,
                max_train_queries=8,
                top_k=30,
                eval_k=30,
                n_hard=2,
                n_random=1,
                checkpoint_every=0,
            )
            run3 = create_run("phase3", phase3_config_dict(enc1, cfg, adapter), run_id=run_id, root=runs_dir)
            train_phase3(run3, enc1, cfg, adapter_dir=adapter, planted_false_negatives=planted)
    finally:
        if old_home is None:
            os.environ.pop("RRRA_HOME", None)
        else:
            os.environ["RRRA_HOME"] = old_home
    (base / "done").write_text("ok\n")
    return TinyRuns(runs_dir, data_dir)


def copy_runs(runs: TinyRuns, home: Path, run_ids: list[str] | None = None) -> Path:
    """Copy the tiny runs (all, or ``run_ids``) into ``home/runs``; returns that folder."""
    dst = home / "runs"
    for run_id in run_ids or sorted(p.name for p in runs.runs_dir.iterdir()):
        shutil.copytree(runs.path(run_id), dst / run_id)
    return dst


@pytest.fixture(scope="session")
def tiny_runs(tiny_model_dir_session: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRuns:
    return build_tiny_runs(tmp_path_factory, tiny_model_dir_session)


# ------------------------------------------------------- written by training
@pytest.mark.parametrize("run_id", [PHASE1, RRRA, UNIFORM])
def test_training_writes_per_query_results_that_average_to_the_run_metrics(tiny_runs: TinyRuns, run_id: str) -> None:
    folder = tiny_runs.path(run_id)
    config = json.loads((folder / "config.json").read_text())
    metrics = json.loads((folder / "metrics.json").read_text())
    pq = parse_per_query(json.loads((folder / PER_QUERY_FILE).read_text()))
    aggregates = run_metric_variants(config["kind"], metrics)
    assert set(pq.variants) == set(aggregates) == ({"retriever"} if run_id == PHASE1 else {"no_rerank", "rerank"})
    assert (pq.dataset, pq.split, pq.k) == (str(tiny_runs.dataset_dir), "test", 30) and pq.measures == list(
        DEFAULT_METRICS
    )
    from rrra_core.data import load_dataset

    qrels = load_dataset(str(tiny_runs.dataset_dir), "test").qrels
    for variant, per_query in pq.variants.items():
        assert set(per_query) == {q for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
        for m in DEFAULT_METRICS:
            mean = float(np.mean([v[m] for v in per_query.values()]))
            assert mean == pytest.approx(aggregates[variant][m], abs=1e-12), (variant, m)


def test_phase1_keeps_its_per_epoch_evaluation(tiny_runs: TinyRuns) -> None:
    metrics = json.loads((tiny_runs.path(PHASE1) / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2] and metrics["after"] == metrics["epochs"][-1]


# ------------------------------------------------------------------ storage
def test_per_query_record_round_trip_and_mean_matches_evaluate() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}, "q3": {"d4": 0}}
    run = {"q1": {"d1": 0.9, "d2": 0.5}, "q2": {"d1": 0.8, "d3": 0.7}}
    rec = json.loads(json.dumps(per_query_record("toy", "test", qrels, {"retriever": run}, k=10)))
    pq = parse_per_query(rec)
    assert set(pq.variants["retriever"]) == {"q1", "q2"}  # q3 has no relevant document
    assert pq.variants["retriever"]["q1"]["RR@10"] == 1.0 and pq.variants["retriever"]["q2"]["RR@10"] == 0.5
    for m, v in evaluate(qrels, run).items():
        assert np.mean([x[m] for x in pq.variants["retriever"].values()]) == pytest.approx(v)


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"format": 1, "variants": {}},
        {"format": 9, "variants": {"a": {}}},
        {"format": 1, "variants": {"a": {"q": {"nDCG@10": "x"}}}},
        [1, 2],
    ],
)
def test_malformed_per_query_file_is_a_one_line_data_error(bad: object) -> None:
    with pytest.raises(DataError) as err:
        parse_per_query(bad, source="runs/x/per_query.json")
    assert "runs/x/per_query.json" in str(err.value) and "\n" not in str(err.value)


# -------------------------------------------------------------- aggregates
def test_run_metric_variants_reads_each_kind_and_default_prefers_the_reranked_ranking() -> None:
    p1 = {"after": {"epoch": 2, "step": 8, "nDCG@10": 0.4}}
    p3 = {"eval": {"no_rerank": {"nDCG@10": 0.3}, "rerank": {"nDCG@10": 0.35}}}
    assert run_metric_variants("phase1", p1) == {"retriever": {"nDCG@10": 0.4}}
    assert run_metric_variants("phase3", p3)["rerank"] == {"nDCG@10": 0.35}
    assert run_metric_variants("phase2", {"val": {"macro_f1": 0.5}}) == {}
    # The one metrics.json shape, as runs write it now.
    new3 = {"phase": 3, "after": {"nDCG@10": 0.35}, "variants": p3["eval"], "epochs": [], "train": {}}
    assert run_metric_variants("phase3", new3) == run_metric_variants("phase3", p3)
    new1 = {"phase": 1, "after": {"epoch": 1, "nDCG@10": 0.4}, "variants": {"retriever": {"nDCG@10": 0.4}}}
    assert run_metric_variants("phase1", new1) == {"retriever": {"nDCG@10": 0.4}}
    assert default_variant(["no_rerank", "rerank"]) == "rerank" and default_variant(["no_rerank"]) == "no_rerank"
    assert default_variant([]) is None
    assert eval_settings({"phase3": {"dataset": "adi", "eval_split": "test"}}) == ("adi", "test")
    assert eval_settings({"train": {"dataset": "adi", "eval_split": ""}}) == ("adi", None)
    assert eval_settings({"adapter": {"dataset": "adi"}}) == (None, None)
    assert eval_settings({"kind": "phase3", "data": {"dataset": "adi", "eval_split": "test"}}) == ("adi", "test")
    assert eval_settings({"kind": "phase2", "data": {"dataset": "adi", "train_split": "test"}}) == (None, None)


def test_side_by_side_orders_metrics_and_computes_deltas() -> None:
    df = side_by_side({"R@100": 0.8, "nDCG@10": 0.4, "zzz": 1.0}, {"nDCG@10": 0.5, "R@100": 0.8, "AnswerRecall@5": 0.2})
    assert df["metric"].tolist() == ["nDCG@10", "R@100", "AnswerRecall@5", "zzz"]
    row = df.set_index("metric").loc["nDCG@10"]
    assert row["delta"] == pytest.approx(0.1) and row["relative"] == pytest.approx(0.25)
    assert np.isnan(df.set_index("metric").loc["zzz", "B"]) and np.isnan(df.set_index("metric").loc["zzz", "delta"])


def test_config_differences_lists_only_changed_settings_and_ignores_the_machine() -> None:
    a = {"kind": "phase3", "phase3": {"sampler": "rrra", "gamma": 2.0, "seed": 0}, "environment": {"cpu": "x"}}
    b = {
        "kind": "phase3",
        "phase3": {"sampler": "uniform", "gamma": 2.0, "seed": 0, "max_steps": None},
        "environment": {"cpu": "y"},
    }
    df = config_differences(a, b)
    assert df.to_dict("records") == [
        {"setting": "phase.max_steps", "A": "—", "B": "None"},
        {"setting": "phase.sampler", "A": "rrra", "B": "uniform"},
    ]
    # A run from before the one config schema compares setting by setting with a new one.
    new = {"kind": "phase3", "format": 2, "data": {}, "phase": {"sampler": "uniform", "gamma": 2.0, "seed": 0}}
    assert config_differences(a, new).to_dict("records") == [{"setting": "phase.sampler", "A": "rrra", "B": "uniform"}]


# --------------------------------------------------------------- per query
def test_per_query_deltas_helped_hurt_and_unmatched_queries() -> None:
    a = {"q1": {"nDCG@10": 0.2}, "q2": {"nDCG@10": 0.9}, "q3": {"nDCG@10": 0.5}, "qa": {"nDCG@10": 1.0}}
    b = {"q1": {"nDCG@10": 0.7}, "q2": {"nDCG@10": 0.4}, "q3": {"nDCG@10": 0.505}, "qb": {"nDCG@10": 0.0}}
    d = per_query_deltas(a, b, "nDCG@10")
    assert d.frame["query_id"].tolist() == ["q1", "q3", "q2"]  # biggest gain first
    assert d.only_a == ["qa"] and d.only_b == ["qb"]
    assert classify_changes(d.frame["delta"]).tolist() == ["helped", "helped", "hurt"]
    assert classify_changes(d.frame["delta"], threshold=0.01).tolist() == ["helped", "unchanged", "hurt"]
    s = summarize_changes(d, threshold=0.01)
    assert (s.n, s.helped, s.hurt, s.unchanged) == (3, 1, 1, 1)
    assert s.mean_delta == pytest.approx((0.5 - 0.5 + 0.005) / 3)
    with pytest.raises(ConfigError):
        classify_changes(d.frame["delta"], threshold=-0.1)
    with pytest.raises(ConfigError, match="R@7"):
        per_query_deltas(a, b, "R@7")


def test_significance_tests_match_known_values() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(5, 5) == 1.0
    assert sign_test_p(9, 1) == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2**10
    from scipy import stats

    rng = np.random.default_rng(0)
    va = rng.random(30)
    vb = va + rng.normal(0.05, 0.1, 30)
    d = per_query_deltas(
        {f"q{i}": {"m": x} for i, x in enumerate(va)}, {f"q{i}": {"m": x} for i, x in enumerate(vb)}, "m"
    )
    assert summarize_changes(d).t_test_p == pytest.approx(stats.ttest_rel(vb, va).pvalue)
    same = per_query_deltas({"q": {"m": 0.5}, "r": {"m": 0.2}}, {"q": {"m": 0.5}, "r": {"m": 0.2}}, "m")
    assert summarize_changes(same).t_test_p == 1.0 and summarize_changes(same).unchanged == 2


def test_real_runs_compare_query_by_query(tiny_runs: TinyRuns) -> None:
    a = parse_per_query(json.loads((tiny_runs.path(UNIFORM) / PER_QUERY_FILE).read_text()))
    b = parse_per_query(json.loads((tiny_runs.path(RRRA) / PER_QUERY_FILE).read_text()))
    d = per_query_deltas(a.variants["no_rerank"], b.variants["rerank"], "nDCG@10")
    assert not d.only_a and not d.only_b and len(d.frame) == len(a.variants["no_rerank"])
    s = summarize_changes(d)
    assert s.helped + s.hurt + s.unchanged == s.n
    assert s.mean_delta == pytest.approx(float(pd.Series(d.frame["B"]).mean() - pd.Series(d.frame["A"]).mean()))
