"""The rerank choice's level is chosen on dev alone: split halves of each run's dev queries (issue 29)."""

from __future__ import annotations

import numpy as np
import pytest

from rrra_core.retrieval.rerank_choice import RerankChoiceConfig, RerankSetting
from rrra_core.workflows.rerank_choice_bench import (
    DEV_LEVELS,
    MIN_GAINS,
    select_level,
    select_min_gain,
    split_half_gains,
    split_half_min_gains,
)

QA2 = RerankSetting("qa", 2.0)


def _dev(n: int, shift: float, seed: int = 0) -> tuple[dict[str, float], dict[RerankSetting, dict[str, float]]]:
    rng = np.random.default_rng(seed)
    off = {f"q{i}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.8, n))}
    return off, {QA2: {q: v + shift + float(rng.normal(0, 0.01)) for q, v in off.items()}}


def test_a_real_gain_is_kept_out_of_half_by_every_level_but_never():
    off, per = _dev(80, 0.05)
    gains = split_half_gains(off, per, RerankChoiceConfig(), seed=0)
    assert set(gains) == {str(x) for x in DEV_LEVELS} and all(len(g) == 2 for g in gains.values())
    # Holm's smallest p over one setting is 1/2001: 0.001 passes; the gain read on the other half is the shift.
    assert gains["0.01"] == pytest.approx([0.05, 0.05], abs=0.01)
    assert gains["0.001"] == pytest.approx([0.05, 0.05], abs=0.01)


def test_a_loss_is_never_switched_on_and_reads_as_zero():
    off, per = _dev(80, -0.05)
    assert all(g == [0.0, 0.0] for g in split_half_gains(off, per, RerankChoiceConfig(), seed=1).values())


def test_too_few_dev_queries_stay_off_at_every_level():
    off, per = _dev(1, 0.5)
    assert all(g == [0.0, 0.0] for g in split_half_gains(off, per, RerankChoiceConfig(), seed=0).values())


def test_a_minimum_gain_keeps_a_large_gain_and_drops_a_small_one():
    big, small = _dev(80, 0.05), _dev(80, 0.006)
    gains = split_half_min_gains(*big, RerankChoiceConfig(), seed=0)
    assert set(gains) == {str(g) for g in MIN_GAINS}
    assert all(g == pytest.approx([0.05, 0.05], abs=0.01) for g in gains.values())  # every δ keeps +0.05
    gains = split_half_min_gains(*small, RerankChoiceConfig(), seed=0)
    assert gains["0.0"] == pytest.approx([0.006, 0.006], abs=0.003)  # on without a minimum
    assert gains["0.01"] == gains["0.02"] == [0.0, 0.0]  # a gain under δ stays off
    assert split_half_min_gains(*_dev(1, 0.5), RerankChoiceConfig(), seed=0) == {str(g): [0.0, 0.0] for g in MIN_GAINS}


def test_select_min_gain_prefers_the_larger_of_near_ties_and_waits_for_every_run():
    def run(by_gain: dict[float, list[float]]) -> dict:
        return {"split_half_min_gain": {str(g): by_gain.get(g, [0.0, 0.0]) for g in MIN_GAINS}}

    # A small gain one collection keeps at δ 0 (+0.0008) against nothing lost elsewhere: within 0.0005 of the best
    # mean over the two collections, so the larger δ is kept.
    datasets = {"c": {"0": run({0.0: [0.0008, 0.0008]})}, "d": {"0": run({g: [0.05, 0.05] for g in MIN_GAINS})}}
    assert select_min_gain(datasets)["chosen"] == max(MIN_GAINS)
    datasets["c"]["0"] = run({0.0: [0.01, 0.01], 0.003: [0.01, 0.01]})  # a real gain lost past 0.003: kept
    assert select_min_gain(datasets)["chosen"] == 0.003
    datasets["c"]["1"] = {"split_half": {}}  # a run measured before minimum gains: no choice yet
    assert select_min_gain(datasets) is None


def _runs(gains_by_level: dict[float, list[float]]) -> dict[str, dict[str, dict]]:
    return {"c": {"0": {"split_half": {str(lv): gains_by_level.get(lv, [0.0, 0.0]) for lv in DEV_LEVELS}}}}


def test_select_level_keeps_the_best_admissible_and_prefers_the_stricter_of_near_ties():
    loose = max(DEV_LEVELS)
    # The loosest level gains most on one collection but loses past the tolerance on the other: not admissible.
    datasets = {
        **_runs({0.01: [0.02, 0.02], 0.02: [0.0202, 0.0202], loose: [0.05, 0.05]}),
        "d": {"0": {"split_half": {str(lv): ([-0.01, -0.01] if lv == loose else [0.0, 0.0]) for lv in DEV_LEVELS}}},
    }
    sel = select_level(datasets)
    assert not sel["table"][str(loose)]["admissible"]
    assert sel["chosen"] == 0.01  # 0.02 is better by 0.0001 only: the stricter level wins the near tie
    assert sel["table"]["0.01"]["by_collection"] == {"c": pytest.approx(0.02), "d": 0.0}


def test_adi_halves_folder_holds_the_bench_s_own_halves(tmp_path) -> None:  # noqa: ANN001
    from rrra_core.data.beir import load_dataset
    from rrra_core.workflows.rerank_choice_bench import _splits, write_adi_halves

    folder = write_adi_halves(tmp_path / "adi-halves")
    train, test = load_dataset(folder, "train"), load_dataset(folder, "test")
    bench_train, bench_test = _splits("adi")
    assert train.qrels == bench_train.qrels and test.qrels == bench_test.qrels
    assert not set(train.qrels) & set(test.qrels) and len(train.qrels) + len(test.qrels) == 35
