"""Training dynamics: step log, loss curves, per-epoch table and the gradient summaries (pure functions)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rrra_core.analysis.dynamics import (
    ALL_CATEGORIES,
    CATEGORY_LABELS,
    epoch_boundaries,
    epoch_table,
    gradient_distribution,
    gradient_frame,
    gradient_over_training,
    loss_curves,
    series_labels,
    sibling_runs,
    step_frame,
)
from rrra_core.runtime.errors import ConfigError


def test_category_labels_cover_the_phase3_gradient_categories() -> None:
    from rrra_core.training.phase3 import GRADIENT_CATEGORIES

    assert tuple(CATEGORY_LABELS) == GRADIENT_CATEGORIES


def _log() -> list[dict]:
    rows = [
        {"phase": 1, "step": s, "epoch": 1 + (s > 3), "loss": float(10 - s), "lr": 0.1 * s, "grad_norm": 1.0}
        for s in range(1, 7)
    ]
    # A kill after step 5 and a resume from the step-4 checkpoint logs step 5 again.
    return (
        rows[:5]
        + [{**rows[4], "loss": 5.5}]
        + rows[5:]
        + [{"phase": 2, "event": "eval", "epoch": 2, "step": 6, "val_macro_f1": 0.5}]
    )


def test_step_frame_keeps_one_row_per_step_and_skips_event_lines() -> None:
    df = step_frame(_log())
    assert df["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df.loc[df["step"] == 5, "loss"].item() == 5.5  # the resumed (last) record wins
    assert "val_macro_f1" not in df.columns and "phase" not in df.columns
    assert step_frame([]).empty and step_frame([{"phase": 2, "event": "eval", "epoch": 1}]).empty


def test_loss_curves_trailing_mean_and_one_series_per_logged_loss() -> None:
    steps = pd.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "epoch": [1, 1, 2, 2],
            "loss": [4.0, 2.0, 6.0, 0.0],
            "loss_contrastive": [3.0, 1.0, 5.0, 0.0],
            "adapter_norm": [np.nan] * 4,
        }
    )
    curves = loss_curves(steps, smooth=2)
    assert list(dict.fromkeys(curves["series"])) == [
        "total loss",
        "contrastive (InfoNCE)",
    ]  # an all-empty column is no curve
    total = curves[curves["series"] == "total loss"]
    assert total["smoothed"].tolist() == [4.0, 3.0, 4.0, 3.0]  # never averages in a later step
    assert total["value"].tolist() == [4.0, 2.0, 6.0, 0.0]
    with pytest.raises(ConfigError):
        loss_curves(steps, smooth=0)


def test_epoch_boundaries_and_phase1_epoch_table() -> None:
    steps = step_frame(_log())
    assert epoch_boundaries(steps) == [3]
    metrics = {
        "before": {"nDCG@10": 0.1},
        "epochs": [{"epoch": 1, "step": 3, "nDCG@10": 0.2}, {"epoch": 2, "step": 6, "nDCG@10": 0.3}],
    }
    table = epoch_table("phase1", metrics, steps)
    assert table["epoch"].tolist() == [0, 1, 2] and table["nDCG@10"].tolist() == [0.1, 0.2, 0.3]
    assert table["train loss (mean)"].tolist()[1:] == [pytest.approx(8.0), pytest.approx((6 + 5.5 + 4) / 3)]
    assert np.isnan(table["train loss (mean)"].iloc[0])


def test_phase3_epoch_table_has_training_loss_only() -> None:
    steps = pd.DataFrame({"step": [1, 2, 3, 4], "epoch": [1, 1, 2, 2], "loss": [4.0, 2.0, 6.0, 0.0]})
    table = epoch_table("phase3", {"eval": {"rerank": {"nDCG@10": 0.5}}}, steps)
    assert table.to_dict("records") == [
        {"epoch": 1, "step": 2, "train loss (mean)": 3.0},
        {"epoch": 2, "step": 4, "train loss (mean)": 3.0},
    ]
    assert epoch_table("phase3", {}, pd.DataFrame(columns=["step", "epoch", "loss"])).empty


def test_sibling_runs_are_one_benchmark_seeds_runs() -> None:
    runs = [
        "bench-x-s0-phase3-rrra",
        "bench-x-s0-phase3-uniform",
        "bench-x-s0-phase3-simans",
        "bench-x-s1-phase3-rrra",
        "bench-x-s0-phase2-full",
    ]
    assert sibling_runs("bench-x-s0-phase3-rrra", runs) == [
        "bench-x-s0-phase3-rrra",
        "bench-x-s0-phase3-simans",
        "bench-x-s0-phase3-uniform",
    ]
    assert sibling_runs("bench-x-s0-phase1", runs)[1:] == [
        "bench-x-s0-phase2-full",
        "bench-x-s0-phase3-rrra",
        "bench-x-s0-phase3-simans",
        "bench-x-s0-phase3-uniform",
    ]
    assert sibling_runs("demo", runs) == ["demo"]


def test_series_labels_disambiguate_repeated_samplers() -> None:
    assert series_labels({"a-rrra": "rrra", "a-uniform": "uniform"}) == {"a-rrra": "rrra", "a-uniform": "uniform"}
    assert series_labels({"r1": "rrra", "r2": "rrra"}) == {"r1": "rrra · r1", "r2": "rrra · r2"}


def _grads(sampler_shift: float, n_steps: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for step in range(1, n_steps + 1):
        for cat, base in (("planted_fn", 8.0), ("other", 2.0)):
            for _ in range(4):
                rows.append(
                    {
                        "step": step,
                        "epoch": 1,
                        "kind": "hard",
                        "category": cat,
                        "grad": base + sampler_shift + rng.random(),
                    }
                )
        rows.append({"step": step, "epoch": 1, "kind": "random", "category": "other", "grad": 0.1})
    return pd.DataFrame(rows)


def test_gradient_frame_filters_kinds_and_scales_to_softmax_share() -> None:
    g = gradient_frame({"topk": _grads(0.0), "rrra": _grads(-4.0)}, kinds=["hard"], scale={"rrra": 0.05})
    assert set(g["series"]) == {"topk", "rrra"} and len(g) == 2 * 80
    raw = _grads(-4.0)
    assert g.loc[g["series"] == "rrra", "grad"].to_numpy() == pytest.approx(
        raw.loc[raw["kind"] == "hard", "grad"].to_numpy() * 0.05
    )
    assert len(gradient_frame({"topk": _grads(0.0)}, kinds=["random"])) == 10
    assert gradient_frame({}).empty


def test_gradient_distribution_per_category_with_all_and_tukey_whiskers() -> None:
    g = gradient_frame({"topk": _grads(0.0), "rrra": _grads(-4.0)})
    dist = gradient_distribution(g).set_index(["series", "category"])
    assert dist.loc[("topk", "planted_fn"), "count"] == 40 and dist.loc[("topk", ALL_CATEGORIES), "count"] == 80
    assert dist.loc[("topk", "planted_fn"), "share"] == pytest.approx(0.5)
    # The comparison the page draws: this "RRRA" pushes less on the false negatives.
    assert dist.loc[("rrra", "planted_fn"), "median"] < dist.loc[("topk", "planted_fn"), "median"]
    # Categories in the phase-3 order, "all" last.
    assert [c for s, c in dist.index if s == "topk"] == ["planted_fn", "other", ALL_CATEGORIES]
    outlier = pd.DataFrame(
        {"series": "s", "step": 1, "epoch": 1, "category": "other", "grad": [1.0, 1.1, 1.2, 1.3, 50.0]}
    )
    row = gradient_distribution(outlier, with_all=False).iloc[0]
    assert row["upperfence"] == 1.3 and row["max"] == 50.0 and row["lowerfence"] == 1.0


def test_gradient_over_training_buckets_share_step_ranges() -> None:
    g = gradient_frame({"topk": _grads(0.0), "rrra": _grads(-4.0)})
    over = gradient_over_training(g, buckets=3)
    topk = over[(over["series"] == "topk") & (over["category"] == "planted_fn")]
    assert list(zip(topk["step_lo"], topk["step_hi"])) == [(1, 3), (4, 6), (7, 10)]
    assert topk["count"].tolist() == [12, 12, 16]
    assert over.groupby("series")["count"].sum().to_dict() == {"rrra": 80, "topk": 80}
    # More buckets than steps: one bucket per step.
    fine = gradient_over_training(g, buckets=50)
    assert fine["bucket"].nunique() == 10 and (fine["step_lo"] == fine["step_hi"]).all()
    assert gradient_over_training(g.iloc[:0]).empty
    with pytest.raises(ConfigError):
        gradient_over_training(g, buckets=0)


def test_hard_negative_note_counts_queries_left_without_one() -> None:
    from rrra_core.analysis.dynamics import hard_negative_note

    assert hard_negative_note({}) is None
    assert (
        hard_negative_note(
            {
                "train": {
                    "sampler": "rrra",
                    "without_hard_negative": {"queries": 5, "no_candidates": 0, "zero_weight": 0},
                }
            }
        )
        is None
    )
    note = hard_negative_note(
        {"train": {"sampler": "rrra", "without_hard_negative": {"queries": 5, "no_candidates": 1, "zero_weight": 2}}}
    )
    assert note is not None and note.startswith(
        "In the last candidate pool, 3 of 5 training queries had no hard negative"
    )
    assert "2 because the adapter put P(FN|neg) at 1" in note and "1 with no candidates left" in note
