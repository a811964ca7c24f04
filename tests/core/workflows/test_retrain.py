"""Retraining with human corrections, end to end on a tiny real run: verdicts in, new runs out, the base untouched."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import db
from rrra_core.adapter import AdapterFitConfig, LabelConfig
from rrra_core.data import apply_verdicts
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.runtime.cli import run_main
from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.paths import runs_dir
from rrra_core.runtime.runs import Run, create_run, open_run
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2
from rrra_core.workflows.retrain import (
    RetrainConfig,
    recorded_config,
    recorded_verdicts,
    retrain,
    retrain_progress,
    retrain_scope,
)
from scripts.retrain import load_corrections
from scripts.retrain import main as retrain_main

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def base_run(tiny_model_dir: Path) -> Run:
    enc = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=32)
    p2 = Phase2Config(
        dataset="adi",
        train_split="test",
        max_train_queries=20,
        subsample_seed=3,
        labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
        fit=AdapterFitConfig(epochs=1, batch_size=64),
    )
    run = create_run("phase2", phase2_config_dict(enc, p2), run_id="base")
    train_phase2(run, enc, p2)
    return run


def _judge(base_run: Run, n: int = 3, skip: int = 0) -> list[tuple[str, str]]:
    """Judge ``n`` of the base's scored negatives: the first two relevant (false negatives found), the rest not."""
    preds = pd.read_parquet(base_run.file("predictions.parquet"))
    negs = preds[preds["label"] == 0].iloc[skip : skip + n]
    pairs = list(zip(negs["query_id"].astype(str), negs["doc_id"].astype(str)))
    with db.session_factory(db.init_db())() as s:
        db.ensure_dataset(s, "adi")
        for i, (q, d) in enumerate(pairs):
            db.save_judgment(s, "adi", q, d, "relevant" if i < 2 else "not_relevant", "ana")
    return pairs


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) with a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run_driver(args: list[str]) -> int:
    """``scripts/retrain.py`` in this process (it installs a SIGTERM handler: put the old one back)."""
    old = signal.getsignal(signal.SIGTERM)
    try:
        return run_main(retrain_main, args)
    finally:
        signal.signal(signal.SIGTERM, old)


def test_adapter_retrain_trains_on_the_verdicts_and_records_them(base_run: Run, capsys: pytest.CaptureFixture) -> None:
    pairs = _judge(base_run)
    before = _snapshot(base_run.path)
    assert _run_driver(["--base-run", "base", "--run-id", "r1", "--phases", "2", "--adapter-epochs", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["changes"] == {"judgments": 3, "false_negatives_added": 2, "confirmed_negatives": 1}
    assert summary["policy"] == "majority" and summary["base_run"] == "base"
    new = open_run("r1")
    # The lineage is in the new run: its settings, the base, the policy, the counts, and the verdicts themselves.
    cfg = json.loads(new.file("config.json").read_text())
    assert cfg["kind"] == "phase2" and cfg["retrain"]["base_run"] == "base"
    assert cfg["retrain"]["policy"] == "majority" and cfg["retrain"]["changes"] == summary["changes"]
    assert recorded_verdicts("r1") == ("majority", {pairs[0]: True, pairs[1]: True, pairs[2]: False})
    assert recorded_config("r1") == RetrainConfig(base_run="base", phases="2", adapter_epochs=1)
    assert json.loads(new.file("retrain.json").read_text()) == {
        k: v for k, v in summary.items() if k not in ("run_id", "config", "queue_version")
    }
    assert summary["queue_version"] == 1  # the new run's learnt queue starts from the round's verdicts
    # The same training queries as the base, and the confirmed false negatives are now labelled positive.
    preds = pd.read_parquet(new.file("predictions.parquet"))
    base_preds = pd.read_parquet(base_run.file("predictions.parquet"))
    assert set(preds["query_id"]) <= set(base_preds["query_id"])
    labelled = {(q, d): lab for q, d, lab in zip(preds["query_id"], preds["doc_id"], preds["label"])}
    assert all(labelled.get(p) == 1 for p in pairs[:2] if p in labelled)
    assert summary["adapter"]["before"]["macro_f1"] is not None and summary["adapter"]["after"]["macro_f1"] is not None
    # A taken id is refused in one line, with nothing written: the base's own, or this round's under other settings.
    r1_files = _snapshot(new.path)
    assert _run_driver(["--base-run", "base", "--run-id", "base", "--phases", "2"]) == 2
    assert "names the base run" in capsys.readouterr().err
    assert _run_driver(["--base-run", "base", "--run-id", "r1", "--phases", "2", "--adapter-epochs", "2"]) == 2
    assert "other settings (adapter_epochs 1)" in capsys.readouterr().err
    assert _snapshot(new.path) == r1_files
    # The base run's folder is byte for byte what it was.
    assert _snapshot(base_run.path) == before
    # Its progress is the run folder's: done, all the way.
    progress = retrain_progress("r1", RetrainConfig(base_run="base", phases="2"))
    assert progress.done and progress.fraction == 1.0 and progress.runs == {"r1": "done"}


def test_the_core_trains_on_the_corrections_it_is_given(base_run: Run) -> None:
    """No store involved: the corrections are built here from verdicts, as any caller may."""
    scope = retrain_scope(RetrainConfig(base_run="base"))
    assert scope.dataset == "adi" and len(scope.query_ids) == 20
    q = scope.query_ids[0]
    outside = next(x for x in sorted(scope.data.qrels) if x not in scope.query_ids)
    cfg = RetrainConfig(base_run="base", phases="2", adapter_epochs=1)
    # Corrections that judge a query the base did not train on are refused: nothing leaks in from outside.
    stray = apply_verdicts(scope.data.qrels, {(outside, "1"): True})
    with pytest.raises(ConfigError, match="outside base run 'base'"):
        retrain(cfg, "r-stray", stray, scope=scope)
    assert not (runs_dir() / "r-stray").exists()
    doc = next(d for d in sorted(scope.data.corpus) if d not in scope.data.qrels[q])
    corrections = apply_verdicts(scope.data.qrels, {(q, doc): True}, query_ids=scope.query_ids)
    summary = retrain(cfg, "r-core", corrections, scope=scope)
    assert summary["changes"] == {"judgments": 1, "false_negatives_added": 1, "confirmed_negatives": 0}
    assert recorded_verdicts("r-core") == ("majority", {(q, doc): True})
    # Resuming with other verdicts than the run recorded is refused; with the same ones, it is a no-op.
    other = apply_verdicts(scope.data.qrels, {(q, doc): False}, query_ids=scope.query_ids)
    with pytest.raises(ConfigError, match="started with 1 other verdicts"):
        retrain(cfg, "r-core", other, scope=scope)
    assert retrain(cfg, "r-core", corrections, scope=scope) == summary


def test_a_killed_retrain_resumes_with_the_verdicts_it_started_with(base_run: Run) -> None:
    pairs = _judge(base_run)
    cfg = RetrainConfig(base_run="base", phases="2", adapter_epochs=1)
    scope = retrain_scope(cfg)
    retrain(cfg, "r2", load_corrections(cfg, "r2", scope, None), scope=scope)
    # Killed before phase 2 finished (no predictions, no summary), and people judged more since.
    open_run("r2").file("predictions.parquet").unlink()
    open_run("r2").file("retrain.json").unlink()
    assert not retrain_progress("r2", cfg).done
    _judge(base_run, n=1, skip=3)
    resumed = load_corrections(cfg, "r2", scope, None)
    assert resumed.verdicts == {pairs[0]: True, pairs[1]: True, pairs[2]: False}  # the recorded three, not four
    summary = retrain(cfg, "r2", resumed, scope=scope)
    assert open_run("r2").file("predictions.parquet").is_file() and summary["changes"]["judgments"] == 3
    assert retrain_progress("r2", cfg).done
    # A resume under another policy would train on other labels: refused.
    with pytest.raises(ConfigError, match="started with policy 'majority'"):
        load_corrections(RetrainConfig(base_run="base", policy="any_relevant"), "r2", scope, None)
    # A new run id reads the store afresh: four verdicts now.
    assert len(load_corrections(cfg, "r3", scope, None).verdicts) == 4


@pytest.mark.slow
def test_joint_retrain_evaluates_before_and_after_in_new_runs_and_resumes_as_a_noop(
    base_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    _judge(base_run)
    base_files = _snapshot(base_run.path)
    written: list[dict] = []
    write_json = Run.write_json

    def recording(run: Run, name: str, obj: object) -> None:
        written.append(obj)  # type: ignore[arg-type]
        write_json(run, name, obj)

    monkeypatch.setattr(Run, "write_json", recording)
    args = ["--base-run", "base", "--run-id", "r2", "--adapter-epochs", "1", "--p3-max-steps", "2"]
    assert _run_driver([*args, "--p3-batch-size", "8"]) == 0
    # The long stages between the steps count what they do, part by part, not only the corpus's documents.
    messages = [str(r.get("message")) for r in written if isinstance(r, dict) and "message" in r]
    for part in (
        "mining the candidate pool: scoring the candidates",
        "evaluating: encoding the queries",
        "evaluating: reranking with the adapter",
        "evaluating the base run: reranking with the adapter",
        "re-mining: scoring candidates",
    ):
        assert any(re.match(rf"{part} · (\d+)/\1 (queries|pairs)", m) for m in messages), (part, messages)
    summary = json.loads(open_run("r2-phase3").file("retrain.json").read_text())
    ret = summary["retrieval"]
    assert ret["split"] == "test" and "nDCG@10" in ret["before"]["no_rerank"] and "nDCG@10" in ret["after"]["no_rerank"]
    assert summary["phase3_run"] == "r2-phase3" and summary["before_run"] == "r2-before"
    # The base's evaluation is a run of its own, comparable query by query with the new one.
    before = open_run("r2-before")
    before_cfg = json.loads(before.file("config.json").read_text())
    assert before_cfg["kind"] == "evaluation" and before_cfg["of_run"] == "base"
    assert before_cfg["data"] == {"dataset": "adi", "eval_split": "test"}
    assert before_cfg["evaluation"]["adapter"] == str(base_run.file("adapter"))
    assert json.loads(before.file("metrics.json").read_text())["variants"] == ret["before"]
    assert before.file("per_query.json").is_file() and open_run("r2-phase3").file("per_query.json").is_file()
    assert open_run("r2-phase3").file("verdicts.json").read_text() == open_run("r2").file("verdicts.json").read_text()
    # A retrain never writes into its base run.
    assert _snapshot(base_run.path) == base_files
    cfg = RetrainConfig(base_run="base", adapter_epochs=1, p3_max_steps=2, p3_batch_size=8)
    progress = retrain_progress("r2", cfg)
    assert progress.done and progress.fraction == 1.0
    assert progress.runs == {"r2": "done", "r2-phase3": "done", "r2-before": "done"}
    scope = retrain_scope(cfg)
    again = retrain(cfg, "r2", load_corrections(cfg, "r2", scope, None), scope=scope)  # a finished job keeps its runs
    assert again["retrieval"] == ret
    assert _snapshot(base_run.path) == base_files


def _queue_pairs(run: Run) -> set[tuple[str, str]]:
    preds = pd.read_parquet(run.file("predictions.parquet"))
    negs = preds[preds["label"] == 0]
    return set(zip(negs["query_id"].astype(str), negs["doc_id"].astype(str), strict=True))


def test_a_retrain_ends_in_a_reviewable_run_and_a_second_round_builds_on_it(base_run: Run) -> None:
    from rrra_core.review.versions import read_latest, read_scores, review_dir

    judged = _judge(base_run, n=4)  # two found relevant, two confirmed not relevant
    args = ["--adapter-epochs", "1", "--p3-max-steps", "2", "--p3-batch-size", "8", "--eval-split", ""]
    assert _run_driver(["--base-run", "base", "--run-id", "r1", *args]) == 0
    r1 = open_run("r1-phase3")
    # The new encoder re-mined the training queries and the new adapter scored them.
    preds = pd.read_parquet(r1.file("predictions.parquet"))
    assert {"p_fn_given_neg", "p_rel", "score", "rank"} <= set(preds.columns)
    assert set(preds["query_id"].astype(str)) <= set(retrain_scope(RetrainConfig(base_run="base")).query_ids)
    # Pairs found relevant are labelled positives now, so they are not in the queue's labelled negatives.
    assert not set(judged[:2]) & _queue_pairs(r1)
    # Its first queue version learnt from the round's verdicts and scores none of the judged pairs.
    version = read_latest(review_dir(r1.path))
    assert version is not None and version.model["version"] == 1 and version.model["policy"] == "majority"
    scored = read_scores(version)
    assert not set(judged) & set(zip(scored["query_id"], scored["doc_id"], strict=True))
    record = json.loads(r1.file("config.json").read_text())["retrain"]
    assert (record["round"], record["lineage"], record["phase2_run"]) == (1, ["base"], "r1")

    # Round 2 starts from round 1's run: its encoder is r1-phase3's fine-tuned one.
    _judge(base_run, n=2, skip=6)
    assert _run_driver(["--base-run", "r1-phase3", "--run-id", "r2", *args]) == 0
    r2 = open_run("r2-phase3")
    assert r2.file("predictions.parquet").is_file()
    cfg2 = json.loads(r2.file("config.json").read_text())
    assert cfg2["encoder"]["model"] == str(r1.file("model"))
    assert (cfg2["retrain"]["round"], cfg2["retrain"]["lineage"]) == (2, ["base", "r1-phase3"])
    summary = json.loads(r2.file("retrain.json").read_text())
    assert summary["round"] == 2 and summary["base_run"] == "r1-phase3"
    # Both rounds train on the base's training queries.
    assert set(pd.read_parquet(r2.file("predictions.parquet"))["query_id"].astype(str)) == set(preds["query_id"])


def test_a_retrain_refuses_judgments_on_documents_gone_from_the_corpus(base_run: Run) -> None:
    cfg = RetrainConfig(base_run="base", phases="2")
    scope = retrain_scope(cfg)
    q = scope.query_ids[0]
    corrections = apply_verdicts(scope.data.qrels, {(q, "no-such-doc"): True}, query_ids=scope.query_ids)
    with pytest.raises(ConfigError, match="not in 'adi'.s corpus any more"):
        retrain(cfg, "gone", corrections, scope=scope)
    assert not (runs_dir() / "gone").exists()


def test_retrain_progress_follows_the_run_folders() -> None:
    cfg = RetrainConfig(base_run="base", phases="2,3", eval_split="test")
    assert retrain_progress("job", cfg).stage.startswith("preparing") and retrain_progress("job", cfg).fraction == 0

    def write(run_id: str, progress: dict, name: str = "progress.json") -> None:
        run = Run(runs_dir() / run_id)
        run.write_json("config.json", {"kind": "x"})
        run.write_json(name, progress)

    # Shares of the bar: phase 2 0.3, phase 3 0.45, the base's evaluation 0.1, re-mining 0.15.
    write("job", {"phase": 2, "stage": "encoding the corpus", "fraction": 0.5, "status": "running"})
    p = retrain_progress("job", cfg)
    assert p.fraction == pytest.approx(0.15) and p.stage == "phase 2: adapter · encoding the corpus" and not p.done
    write("job", {"phase": 2, "stage": "done", "fraction": 1.0, "status": "done"})
    write("job-phase3", {"phase": 3, "epoch": 1, "step": 5, "total_steps": 10, "loss": 1.5, "eta_s": 30})
    p = retrain_progress("job", cfg)
    assert p.fraction == pytest.approx(0.3 + 0.225) and (p.epoch, p.step, p.eta_s) == (1, 5, 30)
    assert p.stage == "phase 3: joint fine-tuning · step 5/10 · loss 1.5000 · ETA 30 s"
    write("job-phase3", {"phase": 3, "step": 10, "total_steps": 10, "status": "done"})
    write("job-before", {"stage": "evaluating the base run", "fraction": 0.0, "status": "running"})
    p = retrain_progress("job", cfg)
    assert p.fraction == pytest.approx(0.75) and p.stage.startswith("evaluating the base run") and not p.done
    write("job-before", {"stage": "done", "status": "done"})
    p = retrain_progress("job", cfg)
    assert p.fraction == pytest.approx(0.85) and p.stage.startswith("re-mining")
    write(
        "job-phase3", {"stage": "re-mining", "fraction": 0.5, "message": "re-mining: encoding"}, "remine_progress.json"
    )
    assert retrain_progress("job", cfg).fraction == pytest.approx(0.925)
    write("job-phase3", {"stage": "re-mining", "status": "done"}, "remine_progress.json")
    assert not retrain_progress("job", cfg).done  # done is the final run's summary, not a phase's end
    Run(runs_dir() / "job-phase3").write_json("retrain.json", {})
    p = retrain_progress("job", cfg)
    assert p.done and p.fraction == 1.0 and p.stage == "done"
    # Adapter only: phase 2 is the whole job.
    two = RetrainConfig(base_run="base", phases="2")
    write("solo", {"phase": 2, "stage": "training the adapter", "fraction": 0.75, "status": "running"})
    assert retrain_progress("solo", two).fraction == pytest.approx(0.75)


def test_bad_settings_are_one_line_errors(base_run: Run, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match="policy"):
        RetrainConfig(policy=" ")
    with pytest.raises(ConfigError, match="phases"):
        RetrainConfig(phases="3")
    # The policy is the store's vocabulary: the driver checks it before anything else.
    assert _run_driver(["--base-run", "base", "--run-id", "r4", "--policy", "loudest"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: unknown merge policy 'loudest': use majority, any_relevant or annotator:<name>"
    )
    assert _run_driver(["--base-run", "base", "--run-id", "r4", "--policy", "annotator:nobody"]) == 2
    assert "annotator 'nobody' has no judgments" in capsys.readouterr().err
    assert not (runs_dir() / "r4").exists()
    create_run("phase1", {}, run_id="p1")
    with pytest.raises(ConfigError, match="starts from a phase-2 run"):
        retrain_scope(RetrainConfig(base_run="p1"))


def test_retrain_driver_reports_user_errors_in_one_line(isolated_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "scripts/retrain.py", "--base-run", "nope", "--run-id", "x"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "RRRA_HOME": str(isolated_home)},
    )
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1].startswith("error:") and "nope" in out.stderr
