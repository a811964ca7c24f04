from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rrra_core.adapter import AdapterFitConfig, LabelConfig, load_adapter
from rrra_core.data import LabelCorrections, load_dataset
from rrra_core.retrieval.encoder import EncoderConfig
from rrra_core.retrieval.rerank_choice import read_rerank_choice
from rrra_core.runtime.reports import METRICS_KEYS, PROGRESS_KEYS, read_metrics
from rrra_core.runtime.runs import Run, create_run
from rrra_core.training.phase2 import Phase2Config, phase2_config_dict, train_phase2
from rrra_core.training.phase3 import GRADIENT_CATEGORIES, Phase3Config, phase3_config_dict, train_phase3


def _enc(model: Path | str) -> EncoderConfig:
    return EncoderConfig(model=str(model), query_max_length=16, doc_max_length=32, encode_batch_size=32)


@pytest.fixture()
def adapter_run(tiny_model_dir: Path) -> Run:
    enc = _enc(tiny_model_dir)
    cfg = _phase2_config()
    run = create_run("phase2", phase2_config_dict(enc, cfg))
    train_phase2(run, enc, cfg)
    return run


def _phase2_config(**fit: object) -> Phase2Config:
    return Phase2Config(
        dataset="adi",
        train_split="test",
        labels=LabelConfig(top_k=30, fp_rank_range=(30, 60)),
        fit=AdapterFitConfig(**{"epochs": 2, "batch_size": 64, **fit}),
    )


def test_phase2_run_writes_adapter_and_pool_predictions(adapter_run: Run) -> None:
    adapter, cfg = load_adapter(adapter_run.file("adapter"))
    assert cfg.dim == 32
    table = pq.read_table(adapter_run.file("predictions.parquet")).to_pandas()
    qrels = load_dataset("adi", "test").qrels
    assert set(table["query_id"]) == set(qrels)
    assert (table.groupby("query_id")["rank"].max() == 29).all()
    probs = table[["p_TP", "p_FN", "p_FP", "p_TN"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Labels come from the qrels the pipeline sees.
    labelled = {(q, d) for q, docs in qrels.items() for d in docs}
    assert all(
        ((q, d) in labelled) == bool(lab) for q, d, lab in zip(table["query_id"], table["doc_id"], table["label"])
    )
    metrics = adapter_run.read_json("metrics.json")
    assert "macro_f1" in metrics["after"] and [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["train"]["class_counts"] and metrics["phase"] == 2
    progress = adapter_run.read_json("progress.json")
    assert (progress["phase"], progress["status"], progress["fraction"]) == (2, "done", 1.0)


def test_killed_phase2_resumes_to_the_same_adapter(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors.numpy import load_file

    enc = _enc(tiny_model_dir)
    cfg = _phase2_config(epochs=3, batch_size=32, checkpoint_every=2)
    straight = create_run("phase2", phase2_config_dict(enc, cfg), run_id="p2-straight")
    expected = train_phase2(straight, enc, cfg)
    killed = create_run("phase2", phase2_config_dict(enc, cfg), run_id="p2-killed")
    real_log = Run.log
    # Mid-way, in the second epoch, and even: the last checkpoint (every 2 steps) is kill_at - 2.
    kill_at = expected["train"]["steps"] // 4 * 2 + 2

    def dying_log(self: Run, record: dict) -> None:
        if record.get("step") == kill_at and "event" not in record:
            raise KeyboardInterrupt("killed")
        real_log(self, record)

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        train_phase2(killed, enc, cfg)
    assert killed.file("checkpoint").is_dir() and not killed.file("adapter").exists()
    monkeypatch.setattr(Run, "log", real_log)
    resumed = train_phase2(killed, enc, cfg)  # continues from its last checkpoint

    a, b = (
        load_file(str(straight.file("adapter") / "adapter.safetensors")),
        load_file(str(killed.file("adapter") / "adapter.safetensors")),
    )
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
    assert resumed["epochs"] == expected["epochs"] and resumed["after"] == expected["after"]
    steps = [r["step"] for r in killed.read_log() if "event" not in r]
    assert steps[-1] == expected["train"]["steps"] and steps.count(kill_at - 1) == 2  # replayed from step kill_at - 2


@pytest.mark.parametrize("sampler", ["rrra", "simans", "margin", "uniform"])
def test_phase3_samplers_train_log_gradients_and_evaluate(tiny_model_dir: Path, adapter_run: Run, sampler: str) -> None:
    enc = _enc(tiny_model_dir)
    cfg = Phase3Config(
        dataset="adi",
        train_split="test",
        eval_split="test",
        sampler=sampler,
        max_steps=2,
        batch_size=8,
        top_k=30,
        eval_k=30,
        n_hard=2,
        n_random=1,
    )
    planted = {"1": {"a"}}
    run = create_run("phase3", phase3_config_dict(enc, cfg, str(adapter_run.file("adapter"))))
    metrics = train_phase3(run, enc, cfg, adapter_dir=str(adapter_run.file("adapter")), planted_false_negatives=planted)
    assert set(metrics["variants"]) == {"no_rerank", "rerank"} and metrics["after"] == metrics["variants"]["rerank"]
    assert tuple(metrics) == METRICS_KEYS and tuple(run.read_json("progress.json")) == PROGRESS_KEYS
    grads = pq.read_table(run.file("gradients.parquet")).to_pandas()
    assert set(grads["category"]) <= set(GRADIENT_CATEGORIES)
    assert (grads["sampler"] == sampler).all() and set(grads["kind"]) <= {"hard", "random"}
    n_hard = len(grads[grads["kind"] == "hard"])
    if sampler == "margin":  # the filter may leave a query fewer candidates than n_hard (random BERT: all cosines ~1)
        assert n_hard <= 2 * 8 * 2
    else:
        assert n_hard == 2 * 8 * 2  # every sampled hard negative, both steps
    assert (grads["grad"] >= 0).all() and (grads["grad"] <= 1 / cfg.temperature).all()
    qrels = load_dataset("adi", "test").qrels
    assert not any(d in qrels[q] for q, d in zip(grads["query_id"], grads["doc_id"]))
    assert metrics["train"]["joint_adapter"] == (sampler == "rrra")
    assert (run.file("model") / "model.safetensors").is_file() and (
        run.file("adapter") / "adapter.safetensors"
    ).is_file()


def test_rrra_never_samples_a_human_confirmed_relevant_doc(tiny_model_dir: Path, adapter_run: Run) -> None:
    enc = _enc(tiny_model_dir)
    cfg = Phase3Config(
        dataset="adi",
        train_split="test",
        eval_split="",
        sampler="uniform",
        max_steps=3,
        batch_size=8,
        top_k=10,
        n_hard=5,
        n_random=0,
    )
    pool = create_run("phase3", {})
    train_phase3(pool, enc, cfg, adapter_dir=str(adapter_run.file("adapter")))
    first = pool.read_json("pool.json")["pool"]
    human = {q: set(e["docs"][:3]) for q, e in first.items()}
    run = create_run("phase3", {})
    # Confirmed relevant by a person, but not (yet) in the qrels phase 3 trains on: still never a negative.
    corrections = LabelCorrections(
        qrels=load_dataset("adi", "test").qrels, verdicts={(q, d): True for q, docs in human.items() for d in docs}
    )
    train_phase3(run, enc, cfg, adapter_dir=str(adapter_run.file("adapter")), corrections=corrections)
    grads = pq.read_table(run.file("gradients.parquet")).to_pandas()
    assert not any(d in human.get(q, ()) for q, d in zip(grads["query_id"], grads["doc_id"]))


def test_killed_phase3_resumes_to_the_same_model(
    tiny_model_dir: Path, adapter_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.numpy import load_file

    enc = _enc(tiny_model_dir)
    cfg = Phase3Config(
        dataset="adi",
        train_split="test",
        eval_split="",
        sampler="rrra",
        max_steps=4,
        batch_size=8,
        top_k=20,
        checkpoint_every=2,
    )
    adapter_dir = str(adapter_run.file("adapter"))
    straight = create_run("phase3", {}, run_id="p3-straight")
    train_phase3(straight, enc, cfg, adapter_dir=adapter_dir)
    killed = create_run("phase3", {}, run_id="p3-killed")
    real_log = Run.log

    def dying_log(self: Run, record: dict) -> None:
        if record.get("step") == 3:
            raise KeyboardInterrupt("killed")
        real_log(self, record)

    monkeypatch.setattr(Run, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        train_phase3(killed, enc, cfg, adapter_dir=adapter_dir)
    monkeypatch.setattr(Run, "log", real_log)
    train_phase3(killed, enc, cfg, adapter_dir=adapter_dir)
    for sub, name in (("model", "model.safetensors"), ("adapter", "adapter.safetensors")):
        a, b = load_file(str(straight.file(sub) / name)), load_file(str(killed.file(sub) / name))
        for k in a:
            np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=f"{sub}:{k}")
    ga = pq.read_table(straight.file("gradients.parquet")).to_pandas()
    gb = pq.read_table(killed.file("gradients.parquet")).to_pandas()
    assert ga["doc_id"].tolist() == gb["doc_id"].tolist()


def test_queries_left_without_a_hard_negative_are_reported(
    tiny_model_dir: Path, adapter_run: Run, caplog: pytest.LogCaptureFixture
) -> None:
    # A random BERT puts every cosine near 1, so a 99% margin filters out every candidate.
    enc = _enc(tiny_model_dir)
    cfg = Phase3Config(
        dataset="adi",
        train_split="test",
        eval_split="",
        sampler="margin",
        relative_margin=0.99,
        max_steps=1,
        batch_size=8,
        top_k=10,
        n_hard=1,
    )
    run = create_run("phase3", {})
    with caplog.at_level("WARNING", logger="rrra_core.training.phase3"):
        metrics = train_phase3(run, enc, cfg, adapter_dir=str(adapter_run.file("adapter")))
    cov = metrics["train"]["without_hard_negative"]
    # Phase 3 trains on every query but the ones its adapter's run chose the rerank on (issue 29).
    held_out = read_rerank_choice(read_metrics(adapter_run, "phase2")).dev_queries
    n_queries = len(load_dataset("adi", "test").qrels) - len(held_out)
    assert held_out and cov["queries"] == n_queries and cov["no_candidates"] + cov["zero_weight"] == n_queries
    assert len(cov["examples"]["zero_weight"]) == min(10, cov["zero_weight"])
    assert any(
        f"{n_queries} of {n_queries} training queries get no hard negative" in r.getMessage() for r in caplog.records
    )
    grads = pq.read_table(run.file("gradients.parquet")).to_pandas()
    assert (grads["kind"] == "hard").sum() == 0


def test_phase3_progress_moves_while_it_mines_and_evaluates(
    tiny_model_dir: Path, adapter_run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rrra_core.runtime import reports

    monkeypatch.setattr(reports, "PROGRESS_EVERY_S", 0.0)  # a tiny run is fast: let every batch write
    records: list[dict] = []
    write_json = Run.write_json

    def recording(self: Run, name: str, obj: object) -> None:
        if name == reports.PROGRESS_FILE:
            records.append(dict(obj))  # type: ignore[call-overload]
        write_json(self, name, obj)

    monkeypatch.setattr(Run, "write_json", recording)
    enc = EncoderConfig(model=str(tiny_model_dir), query_max_length=16, doc_max_length=32, encode_batch_size=16)
    cfg = Phase3Config(
        dataset="adi",
        train_split="test",
        eval_split="test",
        epochs=2,
        remine_every=1,
        max_train_queries=6,
        batch_size=8,
        top_k=30,
        eval_k=30,
        n_hard=2,
        n_random=1,
    )
    run = create_run("phase3", phase3_config_dict(enc, cfg, str(adapter_run.file("adapter"))))
    metrics = train_phase3(run, enc, cfg, adapter_dir=str(adapter_run.file("adapter")))
    # The rerank is chosen on the queries the adapter's run held out, and evaluation reranks as chosen.
    choice = read_rerank_choice(metrics)
    assert choice.dev_queries == read_rerank_choice(read_metrics(adapter_run, "phase2")).dev_queries
    if not choice.on:
        assert metrics["variants"]["rerank"] == metrics["variants"]["no_rerank"] == metrics["after"]

    fractions = [r["fraction"] for r in records]
    assert fractions == sorted(fractions) and records[-1]["status"] == "done"  # the bar never goes back
    mining = [r for r in records if r["stage"] == "mining the candidate pool"]
    assert {r["epoch"] for r in mining} == {1, 2}  # re-mined each epoch, both passes reported
    assert len({r["fraction"] for r in mining if r["epoch"] == 2}) >= 3  # 82 docs, 16 a batch: the bar moves
    # Counts, not an ETA: an ETA appears only once a part takes long enough to time, which depends on the machine.
    assert any(re.search(r"\d+/\d+ docs", r["message"]) for r in mining), [r["message"] for r in mining]
    evaluating = [r for r in records if r["stage"] == "evaluating"]
    moves = {r["fraction"] for r in evaluating}
    assert len(moves) >= 3 and min(moves) == pytest.approx(0.9) and max(moves) == pytest.approx(1.0)
