from __future__ import annotations

import numpy as np
import pytest

from rrra_core.adapter import (
    CLASSES,
    FN,
    FP,
    TN,
    TP,
    AdapterPairs,
    LabelConfig,
    apply_human_judgments,
    build_adapter_pairs,
    class_counts,
)
from rrra_core.runtime.errors import ConfigError


def make_data(n_queries: int = 30, n_pos: int = 4, depth: int = 300):
    """Each query has n_pos positives; two are retrieved (ranks 3 and 7), the rest are not."""
    qrels, cands = {}, {}
    for i in range(n_queries):
        q = f"q{i}"
        pos = [f"{q}-p{j}" for j in range(n_pos)]
        qrels[q] = {d: 1 for d in pos}
        qrels[q][f"{q}-judged0"] = 0  # grade 0 is not a positive
        ranked = [f"{q}-n{r}" for r in range(depth)]
        ranked[3], ranked[7] = pos[0], pos[1 % n_pos]
        cands[q] = [(d, 1.0 - r / depth) for r, d in enumerate(ranked)]
    return qrels, cands


def by_pair(pairs: AdapterPairs) -> dict[tuple[str, str], tuple[int, str, str, int]]:
    return {
        (q, d): (int(lab), CLASSES[t], src, int(r))
        for q, d, lab, t, src, r in zip(
            pairs.query_ids, pairs.doc_ids, pairs.labels, pairs.targets, pairs.sources, pairs.ranks
        )
    }


def test_masked_positives_are_fn_and_hidden_from_visible_qrels():
    qrels, cands = make_data()
    pairs = build_adapter_pairs(qrels, cands, LabelConfig(mu=0.5, fp_fraction=0.0, top_k=50))
    rows = by_pair(pairs)
    assert len(rows) == len(pairs)  # one row per (query, doc)
    n_masked = 0
    for q, rels in qrels.items():
        positives = {d for d, g in rels.items() if g > 0}
        visible = set(pairs.visible_qrels[q])
        assert 1 <= len(visible) < len(positives) + 1
        for d in positives:  # every positive is in the pool, retrieved or not
            label, cls, src, _ = rows[(q, d)]
            if d in visible:
                assert (label, cls, src) == (1, "TP", "qrels")
            else:
                assert (label, cls, src) == (0, "FN", "masked")
                n_masked += 1
        assert rows[(q, f"{q}-n0")][:3] == (0, "TN", "unlabeled")
        assert (
            f"{q}-judged0" not in visible and (q, f"{q}-judged0") not in rows
        )  # grade 0: not a positive, not retrieved
    assert n_masked / (4 * len(qrels)) == pytest.approx(0.5, abs=0.01)  # stochastic rounding keeps the share
    positives = {(q, d) for q, rels in qrels.items() for d, g in rels.items() if g > 0}
    assert not any(rows[p][1] == "TN" for p in positives)
    assert {(q, d) for (q, d), row in rows.items() if row[2] == "unlabeled"} == {
        (q, d) for q in qrels for d, _ in cands[q][:50] if (q, d) not in positives
    }


def test_single_positive_queries_keep_their_positive_unless_mask_single():
    qrels, cands = make_data(n_queries=40, n_pos=1)
    kept = build_adapter_pairs(qrels, cands, LabelConfig(mu=1.0, mask_single=False, fp_fraction=0.0, top_k=20))
    assert kept.visible_qrels == {q: {f"{q}-p0": 1} for q in qrels}
    assert class_counts(kept)[FN] == 0
    masked = build_adapter_pairs(qrels, cands, LabelConfig(mu=0.3, mask_single=True, fp_fraction=0.0, top_k=20))
    n_fn = int(class_counts(masked)[FN])
    assert 0 < n_fn < 40 and len(masked.visible_qrels) == 40 - n_fn  # masked queries have no visible positive left
    two = build_adapter_pairs(*make_data(n_queries=20, n_pos=2), LabelConfig(mu=1.0, fp_fraction=0.0, top_k=20))
    assert all(len(v) == 1 for v in two.visible_qrels.values())  # n_pos >= 2 always keeps one


def test_synthetic_wrong_positive_comes_from_the_rank_range_and_is_labeled_positive():
    qrels, cands = make_data(n_queries=10)
    pairs = build_adapter_pairs(qrels, cands, LabelConfig(mu=0.0, fp_fraction=1.0, fp_rank_range=(100, 300), top_k=50))
    fps = [(q, d, r) for (q, d), (lab, cls, src, r) in by_pair(pairs).items() if src == "synthetic_fp"]
    assert len(fps) == 10
    for q, d, r in fps:
        assert 100 <= r < 300 and d == cands[q][r][0]
        assert d not in qrels[q] and d not in pairs.visible_qrels[q]
        assert by_pair(pairs)[(q, d)][:2] == (1, "FP")
    none = build_adapter_pairs(qrels, cands, LabelConfig(fp_fraction=0.0, top_k=50))
    assert class_counts(none)[FP] == 0


def test_wrong_positive_uses_deep_candidates_or_falls_back_to_the_tail():
    qrels, deep = make_data(n_queries=6, depth=300)
    shallow = {q: c[:40] for q, c in deep.items()}
    cfg = LabelConfig(mu=0.0, fp_fraction=1.0, top_k=40)
    from_deep = build_adapter_pairs(qrels, shallow, cfg, deep_candidates=deep)
    ranks = [r for r, s in zip(from_deep.ranks, from_deep.sources) if s == "synthetic_fp"]
    assert len(ranks) == 6 and all(100 <= r < 300 for r in ranks)
    fallback = build_adapter_pairs(qrels, shallow, cfg)
    rows = by_pair(fallback)
    fps = [(k, row) for k, row in rows.items() if row[2] == "synthetic_fp"]
    assert len(fps) == 6 and all(20 <= row[3] < 40 for _, row in fps)  # the deepest half of 40
    assert len(rows) == len(fallback)  # the FP replaced that doc's TN row rather than duplicating it


def test_human_judgments_override_synthetic_labels():
    qrels, cands = make_data(n_queries=3)
    q = "q0"
    verdicts = {
        (q, f"{q}-n0"): True,  # retrieved negative confirmed relevant -> FN
        (q, f"{q}-n1"): False,  # retrieved negative confirmed irrelevant -> TN
        (q, f"{q}-p0"): False,  # labeled positive confirmed irrelevant -> FP, never masked
        (q, f"{q}-n250"): True,  # not in the pool: added
        ("test-query", "x"): True,  # not a training query: ignored
    }
    cfg = LabelConfig(mu=1.0, fp_fraction=0.0, top_k=20)
    rows = by_pair(build_adapter_pairs(qrels, cands, cfg, verdicts=verdicts))
    assert rows[(q, f"{q}-n0")][:3] == (0, "FN", "human")
    assert rows[(q, f"{q}-n1")][:3] == (0, "TN", "human")
    assert rows[(q, f"{q}-p0")][:3] == (1, "FP", "human")
    assert rows[(q, f"{q}-n250")][:3] == (0, "FN", "human") and rows[(q, f"{q}-n250")][3] == 250
    assert not any(k[0] == "test-query" for k in rows)
    # Once the correction is merged into the qrels, the same judgment reads TP.
    merged = {**qrels, q: {**qrels[q], f"{q}-n0": 1}}
    rows = by_pair(build_adapter_pairs(merged, cands, LabelConfig(mu=0.0, top_k=20), verdicts=verdicts))
    assert rows[(q, f"{q}-n0")][:3] == (1, "TP", "human")


def test_apply_human_judgments_is_the_door_for_later_corrections():
    qrels, cands = make_data(n_queries=4)
    pairs = build_adapter_pairs(qrels, cands, LabelConfig(mu=0.5, fp_fraction=1.0, top_k=20))
    fp_q, fp_d = next((q, d) for q, d, s in zip(pairs.query_ids, pairs.doc_ids, pairs.sources) if s == "synthetic_fp")
    masked_q, masked_d = next((q, d) for q, d, s in zip(pairs.query_ids, pairs.doc_ids, pairs.sources) if s == "masked")
    out = apply_human_judgments(pairs, {(fp_q, fp_d): True, (masked_q, masked_d): True, ("q1", "new"): False})
    rows = by_pair(out)
    assert rows[(fp_q, fp_d)][:3] == (0, "FN", "human")  # its fake positive label is gone
    assert rows[(masked_q, masked_d)][:3] == (0, "FN", "human")
    assert rows[("q1", "new")] == (0, "TN", "human", -1)
    assert len(out) == len(pairs) + 1 and by_pair(pairs)[(fp_q, fp_d)][2] == "synthetic_fp"  # input untouched


def test_outcome_scheme_is_label_times_ranked_in():
    qrels, cands = make_data(n_queries=2)
    pairs = build_adapter_pairs(qrels, cands, LabelConfig(scheme="outcome", k_pred=5, top_k=20))
    rows = by_pair(pairs)
    q = "q0"
    assert rows[(q, f"{q}-p0")][:2] == (1, "TP")  # positive at rank 3 < 5; the label is "ranked in"
    assert rows[(q, f"{q}-p1")][:2] == (0, "FN")  # positive at rank 7
    assert rows[(q, f"{q}-p2")][1] == "FN" and rows[(q, f"{q}-p2")][3] == -1  # not retrieved at all
    assert rows[(q, f"{q}-n0")][1] == "FP" and rows[(q, f"{q}-n4")][1] == "FP"
    assert rows[(q, f"{q}-n5")][1] == "TN"
    assert pairs.visible_qrels == {q: {d: g for d, g in r.items() if g > 0} for q, r in qrels.items()}
    counts = class_counts(pairs)
    assert counts.tolist() == [2, 6, 8, 2 * 22 - 2 - 6 - 8]  # 20 retrieved + 2 unretrieved positives per query
    judged = build_adapter_pairs(
        qrels,
        cands,
        LabelConfig(scheme="outcome", k_pred=5, top_k=20),
        verdicts={(q, f"{q}-n0"): True, (q, f"{q}-p1"): False},
    )
    rows = by_pair(judged)
    assert (
        rows[(q, f"{q}-n0")][1] == "TP" and rows[(q, f"{q}-p1")][1] == "TN"
    )  # the verdict replaces the qrels as truth


def test_same_seed_same_pairs_regardless_of_dict_order():
    qrels, cands = make_data(n_queries=12)
    cfg = LabelConfig(mu=0.3, fp_fraction=0.5, top_k=30, seed=7)
    a = build_adapter_pairs(qrels, cands, cfg)
    b = build_adapter_pairs(dict(reversed(list(qrels.items()))), dict(reversed(list(cands.items()))), cfg)
    assert by_pair(a) == by_pair(b) and a.visible_qrels == b.visible_qrels
    c = build_adapter_pairs(qrels, cands, LabelConfig(mu=0.3, fp_fraction=0.5, top_k=30, seed=8))
    assert by_pair(a) != by_pair(c)
    # One query's labels do not depend on the other queries.
    alone = build_adapter_pairs({"q5": qrels["q5"]}, cands, cfg)
    assert by_pair(alone) == {k: v for k, v in by_pair(a).items() if k[0] == "q5"}


def test_config_validation():
    with pytest.raises(ConfigError):
        LabelConfig(scheme="oracle")
    with pytest.raises(ConfigError):
        LabelConfig(fp_rank_range=(300, 100))
    with pytest.raises(ConfigError):
        LabelConfig(mu=1.5)
    assert class_counts(build_adapter_pairs({}, {}, LabelConfig())).tolist() == [0, 0, 0, 0]
    assert np.asarray(TP) == 0 and (FN, FP, TN) == (1, 2, 3)
