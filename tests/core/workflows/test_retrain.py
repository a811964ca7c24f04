"""Retraining with human corrections, end to end on a tiny real run: labels merged, new runs, job row, before/after."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import db
from rrra_core.adapter import LabelConfig, Phase2Config
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.runs import create_run, open_run
from rrra_core.training.phase2 import AdapterSwitches, phase2_config_dict, train_phase2
from rrra_core.workflows.retrain import RetrainConfig, retrain

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def base_run(tiny_model_dir: Path):
    enc = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=32)
    sw = AdapterSwitches(dataset="adi", train_split="test", max_train_queries=20, subsample_seed=3)
    labels = LabelConfig(top_k=30, fp_rank_range=(30, 60))
    p2 = Phase2Config(epochs=1, batch_size=64)
    run = create_run("phase2", phase2_config_dict(enc, sw, labels, p2), run_id="base")
    train_phase2(run, enc, sw, labels, p2)
    return run


def _judge(base_run, n: int = 3) -> list[tuple[str, str]]:
    import pandas as pd

    preds = pd.read_parquet(base_run.file("predictions.parquet"))
    negs = preds[preds["label"] == 0].head(n)
    pairs = list(zip(negs["query_id"].astype(str), negs["doc_id"].astype(str)))
    with db.session_factory(db.init_db())() as s:
        db.ensure_dataset(s, "adi")
        for i, (q, d) in enumerate(pairs):
            db.save_judgment(s, "adi", q, d, "relevant" if i < 2 else "not_relevant", "ana")
    return pairs


def test_adapter_retrain_uses_the_judgments_and_records_the_job(base_run) -> None:
    pairs = _judge(base_run)
    summary = retrain(RetrainConfig(base_run="base", phases="2", adapter_epochs=1), "r1")
    assert summary["changes"] == {"judgments": 3, "false_negatives_added": 2, "confirmed_negatives": 1}
    new = open_run("r1")
    cfg = json.loads(new.file("config.json").read_text())
    assert cfg["kind"] == "phase2" and cfg["retrain"]["base_run"] == "base"
    import pandas as pd

    preds = pd.read_parquet(new.file("predictions.parquet"))
    # The same training queries as the base, and the confirmed false negatives are now labelled positive.
    base_preds = pd.read_parquet(base_run.file("predictions.parquet"))
    assert set(preds["query_id"]) <= set(base_preds["query_id"])
    labelled = {(q, d): lab for q, d, lab in zip(preds["query_id"], preds["doc_id"], preds["label"])}
    assert all(labelled.get(p) == 1 for p in pairs[:2] if p in labelled)
    with db.session_factory(db.init_db())() as s:
        job = db.get_training_job(s, "r1")
        assert job.status == "done" and job.progress == 1.0 and "r1" in job.message
    assert summary["adapter"]["before"]["macro_f1"] is not None and summary["adapter"]["after"]["macro_f1"] is not None


@pytest.mark.slow
def test_joint_retrain_evaluates_before_and_after_and_resumes_as_a_noop(base_run) -> None:
    _judge(base_run)
    cfg = RetrainConfig(base_run="base", phases="2,3", adapter_epochs=1, p3_max_steps=2, p3_batch_size=8)
    summary = retrain(cfg, "r2")
    ret = summary["retrieval"]
    assert ret["split"] == "test" and "nDCG@10" in ret["before"]["no_rerank"] and "nDCG@10" in ret["after"]["no_rerank"]
    assert open_run("r2-phase3").file("retrain.json").is_file()
    again = retrain(cfg, "r2")  # a finished job run again keeps what it has
    assert again["retrieval"]["after"] == ret["after"]


def test_bad_settings_are_one_line_config_errors(base_run) -> None:
    with pytest.raises(ConfigError, match="policy"):
        RetrainConfig(policy="loudest")
    create_run("phase1", {}, run_id="p1")
    with pytest.raises(ConfigError, match="starts from a phase-2 run"):
        retrain(RetrainConfig(base_run="p1"), "r3")


def test_retrain_driver_reports_user_errors_in_one_line(isolated_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/retrain.py", "--base-run", "nope", "--run-id", "x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "RRRA_HOME": str(isolated_home)},
    )
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error:") and "nope" in out.stderr
