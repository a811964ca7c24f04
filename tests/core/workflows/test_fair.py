"""The fair comparison on ADI with a tiny model: dev carved from training queries, equal trials, resumable parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rrra_core.runtime.errors import ConfigError
from rrra_core.runtime.paths import runs_dir
from rrra_core.workflows.fair import (
    FULL,
    RERANK_ONLY,
    RERANK_RULE,
    FairConfig,
    read_parts,
    run_seed,
    seed_data,
    summarize,
)
from rrra_core.workflows.fair_report import write_result


def _cfg(model: Path, **changes) -> FairConfig:
    base = dict(
        dataset="adi",
        train_split="test",  # ADI has one judged split; the dev carve still keeps dev apart from training
        test_split="test",
        seeds=(0, 1),
        trials=2,
        methods=("uniform", "rrra"),
        query_max_length=16,
        doc_max_length=32,
        top_k=20,
        p2_epochs=2,
        p3_epochs=1,
        batch_size=16,
        model=str(model),
    )
    return FairConfig(**{**base, **changes})


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_the_dev_split_comes_from_training_queries_and_never_trains(tiny_model_dir: Path) -> None:
    d = seed_data(_cfg(tiny_model_dir), 0)
    assert d.dev.qrels and not set(d.dev.qrels) & set(d.train.qrels)
    assert len(d.dev.qrels) == round(0.2 * (len(d.dev.qrels) + len(d.train.qrels)))
    assert seed_data(_cfg(tiny_model_dir), 0).dev.qrels == d.dev.qrels  # fixed per seed


def test_tuning_scoring_resuming_and_the_summary(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir)
    parts_dir = tmp_path / "parts"
    run_seed(cfg, "adi", 0, parts_dir)
    part = json.loads((parts_dir / "s0.json").read_text())
    # Equal trials: every method (and both reranking stages) tried the same number of settings on dev.
    assert {m: len(t) for m, t in part["tuning"].items()} == {
        "rerank_only": 2,
        "uniform": 2,
        "rrra": 2,
        "full_rerank": 3,  # and full RRRA may switch its reranking off, first so that a tie chooses it
    }
    off = part["tuning"]["full_rerank"]["off"]
    assert list(part["tuning"]["full_rerank"])[0] == "off" and off["settings"]["lambda_rr"] == 0.0
    assert off["dev"] == part["tuning"]["rrra"][part["chosen"]["rrra"]]["dev"]  # the resampled encoder's own order
    assert set(part["chosen"]) == {"rerank_only", "uniform", "rrra", "full_rerank"}
    # Full RRRA reranks by the per-run rule: on only past a Holm-corrected paired test on dev (issue 29).
    assert part["chosen"]["full_rerank"] == RERANK_RULE
    rule = part["full_rerank_choice"]
    assert rule["rule"].startswith("holm") and rule["n_dev"] == len(seed_data(cfg, 0).dev.qrels)
    assert (rule["key"] == "off") == (not rule["on"])
    passing = [v for v in rule["dev"].values() if v["p_holm"] is not None and v["p_holm"] <= rule["level"]]
    assert rule["on"] or all(v["delta"] <= 0 for v in passing)
    # The rule's dev figures are the tuning table's: the same encoder, dev split and settings.
    full_dev = part["tuning"]["full_rerank"]
    assert rule["dev"]["off"]["mean"] == pytest.approx(full_dev["off"]["dev"]["nDCG@10"])
    assert all(
        rule["dev"][k]["mean"] == pytest.approx(full_dev[str(i)]["dev"]["nDCG@10"])
        for i, k in enumerate(["p_rel:1", "p_rel:0.5"])
    )
    expected = {"BM25", "zero-shot", "phase 1 (in-batch)", RERANK_ONLY, "uniform top-K", "RRRA resampling only", FULL}
    assert set(part["test"]) == expected and part["finished"]
    n_test = part["test_queries"]
    assert all(len(v["per_query"]["nDCG@10"]) == n_test for v in part["test"].values())

    # A killed benchmark loses one method: the rerun scores only that one and trains nothing.
    folders = sorted(p.name for p in runs_dir().iterdir())
    del part["test"]["uniform top-K"]
    (parts_dir / "s0.json").write_text(json.dumps(part))
    run_seed(cfg, "adi", 0, parts_dir)
    assert "uniform top-K" in json.loads((parts_dir / "s0.json").read_text())["test"]
    assert sorted(p.name for p in runs_dir().iterdir()) == folders

    run_seed(cfg, "adi", 1, parts_dir)  # reuses seed 0's choices; full RRRA's rerank by the rule on its own dev
    parts = read_parts(parts_dir)
    assert parts[1]["chosen"] == parts[0]["chosen"]
    own = parts[1]["full_rerank_choice"]
    assert own["n_dev"] == len(seed_data(cfg, 1).dev.qrels) and own["rule"].startswith("holm")
    assert set(seed_data(cfg, 1).dev.qrels) != set(seed_data(cfg, 0).dev.qrels)
    if own["key"] == "off":  # no reranking: full RRRA is exactly the resampled encoder
        assert parts[1]["test"][FULL]["per_query"] == parts[1]["test"]["RRRA resampling only"]["per_query"]

    result = write_result(tmp_path / "fair_adi", parts, "python scripts/benchmark.py --preset fair-x")
    s = result["summary"]
    assert set(s) == {"metric", "rrra", "best_baseline", "best_baseline_value", "delta", "p_value", "seeds"}
    assert (
        s["metric"] == "nDCG@10"
        and s["seeds"] == 2
        and s["delta"] == pytest.approx(s["rrra"] - s["best_baseline_value"])
    )
    assert s["best_baseline"] == "uniform top-K"  # the only tuned baseline this run has
    ref = result["summary_reference"]
    assert ref["best_baseline"] == max(
        ("BM25", "zero-shot", "phase 1 (in-batch)"), key=lambda b: result["methods"][b]["nDCG@10"]["mean"]
    )
    assert s["p_value"] is None or 0.0 <= s["p_value"] <= 1.0
    md = (tmp_path / "fair_adi.md").read_text()
    assert md.startswith("# Fair comparison on adi") and "--preset fair-x" in md and "dev nDCG@10" in md

    rows = result["full_rerank_choices"]
    assert [r["seed"] for r in rows] == [0, 1] and "## Full RRRA's rerank per seed" in md
    assert rows[1]["test_full_minus_resampling"]["nDCG@10"] == pytest.approx(
        parts[1]["test"][FULL]["metrics"]["nDCG@10"] - parts[1]["test"]["RRRA resampling only"]["metrics"]["nDCG@10"]
    )

    # A part made by an older rule (seed 0 chose full RRRA's rerank by the best dev mean) with its runs gone: the
    # rerun chooses again by the rule, trains only RRRA's chosen run again, and rescores only the two RRRA rows.
    old = json.loads((parts_dir / "s0.json").read_text())
    old["chosen"]["full_rerank"] = "1"
    old.pop("full_rerank_choice")
    (parts_dir / "s0.json").write_text(json.dumps(old))
    for seed in (0, 1):
        second = json.loads((parts_dir / f"s{seed}.json").read_text())
        second["test"][FULL]["choice"] = f"{second['chosen']['rrra']}/1"
        (parts_dir / f"s{seed}.json").write_text(json.dumps(second))
    # A part chosen by the older rule has no per-seed record: the table shows only seed 1 until seed 0 reruns.
    assert [r["seed"] for r in summarize(read_parts(parts_dir))["full_rerank_choices"]] == [1]
    import shutil

    for folder in runs_dir().iterdir():
        if folder.is_dir():
            shutil.rmtree(folder)
    before = [json.loads((parts_dir / f"s{seed}.json").read_text())["test"] for seed in (0, 1)]
    for seed in (0, 1):
        run_seed(cfg, "adi", seed, parts_dir)
    phase3 = sorted(p.name for p in runs_dir().iterdir() if "-phase3-" in p.name and p.is_dir())
    assert len(phase3) == 2 and all("-phase3-rrra-" in name for name in phase3)  # uniform is not retrained
    parts = read_parts(parts_dir)
    for seed, part in enumerate(parts):
        after = part["test"]
        assert part["chosen"]["full_rerank"] == RERANK_RULE and part["full_rerank_choice"]["rule"].startswith("holm")
        assert after[FULL]["choice"] == f"{part['chosen']['rrra']}/{RERANK_RULE}"
        assert all(after[m] == before[seed][m] for m in before[seed] if m not in (FULL, "RRRA resampling only"))
    assert summarize(parts)["methods"][FULL]["nDCG@10"]["n"] == 2


def test_more_trials_extend_the_tuning_and_rescore_only_what_changed(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(tiny_model_dir, methods=("uniform",))
    parts_dir = tmp_path / "parts"
    for seed in (0, 1):
        run_seed(cfg, "adi", seed, parts_dir)
    before = read_parts(parts_dir)
    more = _cfg(tiny_model_dir, methods=("uniform",), trials=3)
    # Seed 1 may not start on the old choices while seed 0 has not run the new trials.
    with pytest.raises(ConfigError, match="needs the tuning seed 0's choices"):
        run_seed(more, "adi", 1, parts_dir)
    run_seed(more, "adi", 0, parts_dir)
    parts = read_parts(parts_dir)
    uniform = parts[0]["tuning"]["uniform"]
    assert list(uniform) == ["0", "1", "2"] and {k: uniform[k] for k in ("0", "1")} == before[0]["tuning"]["uniform"]
    # Seed 1 still holds scores made with the old choices: they are not pooled, and it is not finished.
    summary = summarize(parts)
    assert 1 not in summary["seeds_done"] and 0 in summary["seeds_done"]
    if parts[0]["chosen"]["uniform"] != before[0]["chosen"]["uniform"]:
        assert summary["methods"]["uniform top-K"]["nDCG@10"]["n"] == 1
    run_seed(more, "adi", 1, parts_dir)
    summary = summarize(read_parts(parts_dir))
    assert summary["seeds_done"] == [0, 1] and summary["methods"]["uniform top-K"]["nDCG@10"]["n"] == 2
    # Fewer trials than a part holds is another comparison, not an extension.
    with pytest.raises(ConfigError, match="other settings"):
        run_seed(cfg, "adi", 0, parts_dir)


def test_workers_train_the_trials_side_by_side_with_the_same_outcome(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _cfg(tiny_model_dir, methods=("uniform", "margin"), trials=1)
    one = run_seed(cfg, "adi", 0, tmp_path / "one")
    monkeypatch.setenv("RRRA_HOME", str(tmp_path / "fresh"))  # no finished runs: the workers train every trial
    two = run_seed(cfg, "adi", 0, tmp_path / "two", workers=2)
    for method in cfg.methods:
        assert list(two["tuning"][method]) == list(one["tuning"][method]) == ["0"]
        for trial, entry in one["tuning"][method].items():
            assert two["tuning"][method][trial]["dev"] == pytest.approx(entry["dev"], abs=1e-6)
    assert two["chosen"] == one["chosen"]
    assert len(list(runs_dir().glob("fair-adi-s0-phase3-*"))) == 2  # each trial trained once
    # Another seed trains its chosen runs side by side, then scores them in turn.
    other = run_seed(cfg, "adi", 1, tmp_path / "two", workers=2)
    assert {"uniform top-K", "margin filter"} <= set(other["test"]) and other["finished"]
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        run_seed(cfg, "adi", 1, tmp_path / "two", workers=0)


def test_another_seed_without_the_tuning_choices_scores_baselines_then_stops(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_model_dir)
    with pytest.raises(ConfigError, match="needs the tuning seed 0's choices"):
        run_seed(cfg, "adi", 1, tmp_path)
    assert {"BM25", "zero-shot", "phase 1 (in-batch)"} <= set(json.loads((tmp_path / "s1.json").read_text())["test"])
    # A part file made with other settings is never mixed in.
    with pytest.raises(ConfigError, match="other settings"):
        run_seed(_cfg(tiny_model_dir, p3_epochs=2), "adi", 1, tmp_path)


def test_summary_reads_answer_recall_and_picks_the_strongest_tuned_baseline() -> None:
    def part(seed: int, shift: float) -> dict:
        qs = [f"q{i}" for i in range(20)]

        def method(base: float) -> dict:
            per = {q: base + (0.01 * i) for i, q in enumerate(qs)}
            hits = {q: float(i % 2 == 0 or base > 0.5) for i, q in enumerate(qs)}
            mean = sum(per.values()) / len(qs)
            ar = sum(hits.values()) / len(qs)
            return {
                "metrics": {"nDCG@10": mean, "R@1": mean, "AnswerRecall@1": ar},
                "per_query": {"nDCG@10": per, "R@1": per, "AnswerRecall@1": hits},
            }

        test = {
            "BM25": method(0.7),
            "margin filter": method(0.3),
            "SimANS": method(0.4 + shift),
            FULL: method(0.6),
            RERANK_ONLY: method(0.35),
        }
        return {"seed": seed, "config": {"dataset": "squad", "seeds": [seed]}, "test": test, "finished": True}

    result = summarize([part(0, 0.0), part(1, 0.01)])
    assert result["summary"]["best_baseline"] == "SimANS" and result["summary"]["delta"] > 0
    assert result["summary"]["p_value"] < 0.05
    ar1 = result["summary_ar1"]
    assert ar1["metric"] == "answer_recall@1" and ar1["rrra"] == 1.0 and ar1["best_baseline_value"] == 0.5
    # BM25 is stronger than full RRRA here: the reference summary says so, the tuned comparison is unaffected.
    assert result["summary_reference"]["best_baseline"] == "BM25" and result["summary_reference"]["delta"] < 0


def test_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        FairConfig(methods=("uniform", "bm42"))
    with pytest.raises(ConfigError, match="trials must be between 1 and 6"):
        FairConfig(trials=9)


@pytest.mark.parametrize(
    ("delta", "p", "words"),
    [
        (0.02, 0.01, "beats the best baseline (SimANS) by +0.0200"),
        (0.02, 0.3, "not significant (p = 0.3)"),
        (-0.02, 0.01, "RRRA is significantly worse"),
        (0.00001, 0.9, "ties the best baseline"),
        (-0.003, 0.3, "trails the best baseline (SimANS) by -0.0030"),
    ],
)
def test_the_verdict_says_what_the_numbers_say(delta: float, p: float, words: str) -> None:
    from rrra_core.analysis.results_view import target_verdict

    s = {
        "metric": "nDCG@10",
        "rrra": 0.4 + delta,
        "best_baseline": "SimANS",
        "best_baseline_value": 0.4,
        "delta": delta,
        "p_value": p,
        "seeds": 3,
    }
    assert words in target_verdict({"summary": s})
    assert "equals resampling only" not in target_verdict({"summary": s})
    off = {"summary": s, "tuning": {"chosen": {"full_rerank": "off"}}}
    assert "Dev chose no reranking for full RRRA" in target_verdict(off)
    # The per-run rule: off in every seed reads the same; on in one seed does not.
    rule = {"summary": s, "full_rerank_choices": [{"seed": 0, "choice": "off"}, {"seed": 1, "choice": "off"}]}
    assert "Dev chose no reranking for full RRRA" in target_verdict(rule)
    rule["full_rerank_choices"][1]["choice"] = "5"
    assert "equals resampling only" not in target_verdict(rule)
