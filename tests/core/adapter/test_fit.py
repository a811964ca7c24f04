from __future__ import annotations

import numpy as np
import pytest
import torch

from rrra_core.adapter import (
    CLASSES,
    FN,
    TN,
    AdapterConfig,
    AdapterFitConfig,
    LabelConfig,
    RRRAAdapter,
    build_adapter_pairs,
    load_adapter,
    pair_indices,
    predict_pairs,
    save_adapter,
    split_queries,
    train_adapter,
)
from rrra_core.runtime.errors import ConfigError, DataError
from rrra_core.runtime.runs import Run

D = 16


@pytest.fixture(autouse=True)
def one_thread():
    # Tensors here are tiny: with a busy CPU, thread hand-offs cost 50x the math.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def normalize(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic_world(n_queries: int = 80, n_pos: int = 3, n_other: int = 40, seed: int = 0):
    """Relevant docs sit near their query (whether labeled or masked); everything else is random."""
    rng = np.random.default_rng(seed)
    queries, docs, qrels, cands = {}, {}, {}, {}
    for i in range(n_queries):
        q = f"q{i}"
        queries[q] = normalize(rng.normal(size=D))
        pos = {f"{q}-p{j}": normalize(queries[q] + 0.1 * rng.normal(size=D)) for j in range(n_pos)}
        other = {f"{q}-n{j}": normalize(rng.normal(size=D)) for j in range(n_other)}
        docs.update(pos)
        docs.update(other)
        qrels[q] = {d: 1 for d in pos}
        cands[q] = sorted(((d, float(queries[q] @ v)) for d, v in {**pos, **other}.items()), key=lambda x: -x[1])
    return queries, docs, qrels, cands


LABELS = LabelConfig(mu=0.34, fp_fraction=0.6, fp_rank_range=(30, 43), top_k=30, seed=0)


def test_phase2_learns_to_spot_false_negatives(tmp_path):
    queries, docs, qrels, cands = synthetic_world()
    pairs = build_adapter_pairs(qrels, cands, LABELS)
    counts = np.bincount(pairs.targets, minlength=4)
    assert all(counts > 0), counts
    torch.manual_seed(0)
    adapter = RRRAAdapter(AdapterConfig(dim=D))
    cfg = AdapterFitConfig(epochs=5, batch_size=64, lr=1e-2, val_fraction=0.25, seed=0)
    run = Run(tmp_path)
    doc_ids = sorted(docs)
    metrics = train_adapter(adapter, pairs, queries, (doc_ids, np.stack([docs[d] for d in doc_ids])), cfg, run=run)

    val = metrics["after"]
    assert metrics["train"]["queries"] == {"train": 60, "val": 20}
    assert val["macro_f1"] >= 0.8, val
    assert set(val["f1"]) == set(CLASSES) and len(val["confusion"]) == 4
    assert val["mean_p_fn_given_neg"]["FN"] > val["mean_p_fn_given_neg"]["TN"] + 0.25
    assert metrics["train"]["class_weights"]["TN"] < 1 < metrics["train"]["class_weights"]["FN"]
    assert metrics["best"] in metrics["epochs"] and metrics["train"]["fit"]["macro_f1"] is not None

    # The held-out readings agree with the reported summary, and the adapter moved FNs toward q.
    val_q = split_queries(pairs.query_ids, cfg.val_fraction, cfg.seed)
    idx = np.flatnonzero([q in val_q for q in pairs.query_ids])
    Q, Dm, qi, di = pair_indices(pairs.select(idx), queries, docs)
    out = predict_pairs(adapter, Q, Dm, qi, di)
    targets = pairs.targets[idx]
    assert out["p_fn_given_neg"][targets == FN].mean() > out["p_fn_given_neg"][targets == TN].mean()
    assert out["p_rel"][targets == FN].mean() > out["p_rel"][targets == TN].mean()
    assert out["ca"][targets == FN].mean() < 1.0

    log = run.read_log()
    steps = [r for r in log if "ce" in r]
    assert len(steps) == metrics["train"]["steps"] and {"loss", "ce", "norm", "lr", "epoch"} <= set(steps[0])
    assert steps[-1]["ce"] < steps[0]["ce"]
    assert sum(r.get("event") == "eval" for r in log) == cfg.epochs


def test_predict_pairs_with_a_fresh_adapter_reads_the_retriever():
    rng = np.random.default_rng(1)
    q, c = normalize(rng.normal(size=(50, D))), normalize(rng.normal(size=(50, D)))
    adapter = RRRAAdapter(AdapterConfig(dim=D))
    out = predict_pairs(adapter, q, c, batch_size=7)
    assert out["probs"].shape == (50, 4) and np.allclose(out["probs"].sum(1), 1, atol=1e-6)
    assert np.allclose(out["qa"], (q * c).sum(1), atol=1e-5)  # a = c at the start
    assert np.allclose(out["ca"], 1.0, atol=1e-6)
    assert {k: v.shape for k, v in out.items() if k != "probs"} == {
        k: (50,) for k in ("p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca")
    }
    assert adapter.training  # mode restored


def test_trained_adapter_round_trips_through_disk(tmp_path):
    queries, docs, qrels, cands = synthetic_world(n_queries=20, n_other=40)
    pairs = build_adapter_pairs(qrels, cands, LABELS)
    cfg = AdapterConfig(dim=D, hidden=12)
    adapter = RRRAAdapter(cfg)
    train_adapter(
        adapter,
        pairs,
        queries,
        docs,
        AdapterFitConfig(epochs=1, batch_size=128, val_fraction=0.0, class_weighting=False, lambda_norm=0.0),
    )
    save_adapter(adapter, cfg, tmp_path / "adapter")
    loaded, _ = load_adapter(tmp_path / "adapter")
    Q, Dm, qi, di = pair_indices(pairs, queries, docs)
    a, b = predict_pairs(adapter, Q, Dm, qi, di), predict_pairs(loaded, Q, Dm, qi, di)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_bad_inputs_are_user_errors():
    queries, docs, qrels, cands = synthetic_world(n_queries=4, n_other=10)
    pairs = build_adapter_pairs(qrels, cands, LabelConfig(top_k=10, fp_fraction=0.0))
    missing = {d: v for d, v in docs.items() if d != pairs.doc_ids[0]}
    with pytest.raises(DataError, match="no embedding"):
        train_adapter(RRRAAdapter(AdapterConfig(dim=D)), pairs, queries, missing, AdapterFitConfig())
    with pytest.raises(ConfigError, match="does not match"):
        train_adapter(RRRAAdapter(AdapterConfig(dim=8)), pairs, queries, docs, AdapterFitConfig())
    with pytest.raises(ConfigError):
        AdapterFitConfig(val_fraction=1.0)


def _scripted_val_f1(monkeypatch, scores):
    """Held-out macro-F1 per epoch as given (the real metrics otherwise): a collapse after a good epoch."""
    from rrra_core.adapter import fit as fit_mod

    real = fit_mod._evaluate_pairs
    epochs = iter(scores)

    def fake(adapter, data, pairs, idx):
        out = real(adapter, data, pairs, idx)
        if idx is data.val_idx:
            out = {**out, "macro_f1": next(epochs, out["macro_f1"])}
        return out

    monkeypatch.setattr(fit_mod, "_evaluate_pairs", fake)


def _fit(tmp_path, keep, n_queries=80):
    queries, docs, qrels, cands = synthetic_world(n_queries=n_queries)
    pairs = build_adapter_pairs(qrels, cands, LABELS)
    torch.manual_seed(0)
    adapter = RRRAAdapter(AdapterConfig(dim=D))
    cfg = AdapterFitConfig(epochs=3, batch_size=64, lr=1e-2, val_fraction=0.25, seed=0, keep=keep)
    doc_ids = sorted(docs)
    vecs = (doc_ids, np.stack([docs[d] for d in doc_ids]))
    tmp_path.mkdir(parents=True, exist_ok=True)
    metrics = train_adapter(adapter, pairs, queries, vecs, cfg, run=Run(tmp_path))
    return adapter, metrics


def test_the_best_held_out_epoch_is_kept_not_the_last(tmp_path, monkeypatch):
    _scripted_val_f1(monkeypatch, [0.5, 0.9, 0.2])
    best, m_best = _fit(tmp_path / "best", "best")
    _scripted_val_f1(monkeypatch, [0.5, 0.9, 0.2])
    last, m_last = _fit(tmp_path / "last", "last")
    assert m_best["train"]["kept_epoch"] == 2 and m_last["train"]["kept_epoch"] == 3
    assert m_best["best"]["epoch"] == 2 and m_best["train"]["warnings"] == []
    # Same seed, same steps: the runs differ only in which epoch's weights were kept.
    diff = [not torch.equal(a, b) for a, b in zip(best.state_dict().values(), last.state_dict().values())]
    assert any(diff)
    saved = torch.load(tmp_path / "best" / "adapter_best_epoch.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in best.state_dict().items())


def test_too_few_held_out_queries_warn_that_the_epoch_choice_is_unreliable(tmp_path):
    _, metrics = _fit(tmp_path, "best", n_queries=12)  # 25 % of 12 = 3 held-out queries
    assert metrics["train"]["queries"]["val"] == 3
    assert any("only 3 held-out queries" in w for w in metrics["train"]["warnings"])


def test_keep_must_be_best_or_last():
    with pytest.raises(ConfigError, match="keep must be best or last"):
        AdapterFitConfig(keep="first")
