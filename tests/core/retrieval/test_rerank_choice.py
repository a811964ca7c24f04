"""The per-run rerank choice: on only when a setting beats off on dev past a Holm-corrected paired test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rrra_core.retrieval.rerank_choice import (
    RerankChoiceConfig,
    RerankSetting,
    choose_rerank,
    dev_queries,
    holm,
    parse_settings,
    read_rerank_choice,
    score_settings,
)
from rrra_core.runtime.errors import ConfigError

QA2, PREL1 = RerankSetting("qa", 2.0), RerankSetting("p_rel", 1.0)


def _values(seed: int, n: int, shift: float) -> tuple[dict[str, float], dict[str, float]]:
    rng = np.random.default_rng(seed)
    off = rng.uniform(0.2, 0.8, n)
    return {f"q{i}": float(v) for i, v in enumerate(off)}, {
        f"q{i}": float(np.clip(v + shift + rng.normal(0, 0.02), 0, 1)) for i, v in enumerate(off)
    }


def test_a_clear_dev_gain_switches_the_best_passing_setting_on():
    off, better = _values(0, 60, 0.05)
    _, noise = _values(0, 60, 0.0)
    choice = choose_rerank(off, {PREL1: noise, QA2: better}, RerankChoiceConfig())
    assert choice.on and (choice.signal, choice.lambda_rr) == ("qa", 2.0)
    assert choice.p_value is not None and choice.p_value <= 0.05
    assert choice.n_dev == 60 and choice.dev["qa:2"]["delta"] == pytest.approx(0.05, abs=0.01)
    assert "on · qa, λ 2" in choice.summary()


def test_a_small_or_negative_gain_stays_off():
    off, worse = _values(1, 60, -0.05)
    # A mean gain on a few queries, half of them worse: not evidence.
    off2 = {f"q{i}": 0.5 for i in range(8)}
    tiny = {q: 0.5 + (0.2 if i % 2 else -0.1) for i, q in enumerate(off2)}
    assert not choose_rerank(off, {QA2: worse}, RerankChoiceConfig()).on
    choice = choose_rerank(off2, {QA2: tiny, PREL1: tiny}, RerankChoiceConfig())
    assert not choice.on and choice.lambda_rr == 0.0 and choice.best in ("qa:2", "p_rel:1")
    assert choice.summary().startswith("off")


def test_the_correction_counts_the_settings_tried():
    # One setting alone passes at 0.05; the same evidence among six is Holm-corrected past it.
    off = {f"q{i}": 0.5 for i in range(12)}
    gain = {q: (0.6 if i < 9 else 0.45) for i, q in enumerate(off)}
    cfg = RerankChoiceConfig()
    alone = choose_rerank(off, {QA2: gain}, cfg)
    many = choose_rerank(off, {RerankSetting("qa", x): gain for x in (0.5, 1, 2, 3, 4, 5)}, cfg)
    assert alone.dev["qa:2"]["p"] == many.dev["qa:2"]["p"]
    assert many.dev["qa:2"]["p_holm"] > alone.dev["qa:2"]["p_holm"]


def test_holm_is_step_down_and_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_dev_split_is_fixed_by_ids_and_seed_whatever_their_order():
    ids = [f"q{i}" for i in range(50)]
    train, dev = dev_queries(ids, RerankChoiceConfig())
    assert len(dev) == 10 and not set(train) & set(dev)
    assert dev_queries(list(reversed(ids)), RerankChoiceConfig()) == (train, dev)
    assert dev_queries(ids, RerankChoiceConfig(seed=1))[1] != dev


def test_settings_are_checked():
    assert parse_settings("qa:2, p_rel:0.5") == [QA2, RerankSetting("p_rel", 0.5)]
    for bad in ("qa", "qa:0", "foo:1", "qa:x"):
        with pytest.raises(ConfigError):
            parse_settings(bad)
    with pytest.raises(ConfigError):
        RerankChoiceConfig(level=0)


def test_score_settings_reranks_each_setting_on_the_same_run():
    run = {"q": {"a": 0.9, "b": 0.8}}
    qrels = {"q": {"b": 1}}
    signals = {"qa": {"q": {"a": 0.1, "b": 0.9}}}
    off, per = score_settings(run, signals, qrels, [QA2], "nDCG@10")
    assert off["q"] < per[QA2]["q"] == pytest.approx(1.0)


def test_old_runs_read_their_fixed_setting_and_new_ones_their_choice():
    old = read_rerank_choice({"after": {}}, lambda_rr=2.0, signal="qa")
    assert old.rule == "fixed" and old.on and old.setting == QA2
    assert read_rerank_choice({}, None) is None
    off, better = _values(0, 40, 0.05)
    made = choose_rerank(off, {QA2: better}, RerankChoiceConfig())
    back = read_rerank_choice(json.loads(json.dumps({"rerank_choice": made.as_dict()})), lambda_rr=9.0)
    assert back == made
