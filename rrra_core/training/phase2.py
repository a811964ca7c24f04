"""Phase 2 as a run: freeze an encoder, precompute embeddings, build labels, train the adapter.

Writes into the run folder: ``adapter/`` (config JSON + safetensors),
``metrics.json`` (four-class F1 on held-out queries, class counts) and
``predictions.parquet``: the adapter's view of every training query's top-K
candidates (rank, retriever score, label, the four class probabilities,
P(FN|neg), P(FP|pos), P(rel), QA, CA). The app's browser and review queue read
that file; nothing is recomputed in the UI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from rrra_core.adapter import (
    CLASSES,
    AdapterConfig,
    LabelConfig,
    Phase2Config,
    RRRAAdapter,
    build_adapter_pairs,
    predict_pairs,
    save_adapter,
    train_adapter,
)
from rrra_core.data.beir import Dataset, load_dataset
from rrra_core.data.corrections import LabelCorrections
from rrra_core.retrieval.dense import Retrieval, retrieve
from rrra_core.retrieval.encoder import BiEncoder, EncoderConfig
from rrra_core.retrieval.evaluation import rank_run
from rrra_core.runtime.config import config_to_dict, opt
from rrra_core.runtime.device import resolve_device
from rrra_core.runtime.runs import Run

__all__ = ["AdapterSwitches", "train_phase2", "phase2_config_dict", "pool_predictions"]

log = logging.getLogger(__name__)


@dataclass
class AdapterSwitches:
    """Adapter architecture switches (the ablations) and where its data comes from."""

    dataset: str = opt("cranfield", "embedded dataset name or a BEIR folder")
    train_split: str = opt("train", "qrels split whose queries train the adapter")
    hidden: int | None = opt(None, "MLP hidden size h (default: d)")
    residual: bool = opt(True, "a = c + MLP(z); false = the no-residual ablation")
    zero_init: bool = opt(True, "zero the last MLP layer so a = c at start; false = the no-initialization ablation")
    head_init: str = opt(
        "cosine",
        "classification head start: 'cosine' (the retriever's ranking) or 'random'",
        choices=("cosine", "random"),
    )
    index_kind: str = opt("auto", "FAISS index kind")
    max_train_queries: int | None = opt(
        None, "subsample this many training queries (budget knob; the quick demo uses it)"
    )
    subsample_seed: int = opt(0, "seed for the query subsample")


def phase2_config_dict(
    enc: EncoderConfig, sw: AdapterSwitches, labels: LabelConfig, p2: Phase2Config
) -> dict[str, Any]:
    """The sections saved in a phase-2 run's ``config.json``."""
    return {
        "encoder": config_to_dict(enc),
        "adapter": config_to_dict(sw),
        "labels": config_to_dict(labels),
        "phase2": config_to_dict(p2),
    }


def pool_predictions(
    adapter: RRRAAdapter, res: Retrieval, qrels: dict[str, dict[str, int]], top_k: int
) -> dict[str, Any]:
    """The adapter's readings for every query's top-K candidates, as columns."""
    qrow = {q: i for i, q in enumerate(res.query_ids)}
    drow = {d: i for i, d in enumerate(res.corpus.ids)}
    cols: dict[str, list] = {k: [] for k in ("query_id", "doc_id", "rank", "score", "label")}
    for q, ranked in rank_run(res.run).items():
        for r, (d, s) in enumerate(ranked[:top_k]):
            cols["query_id"].append(q)
            cols["doc_id"].append(d)
            cols["rank"].append(r)
            cols["score"].append(float(s))
            cols["label"].append(int(qrels.get(q, {}).get(d, 0) > 0))
    if not cols["query_id"]:
        return {
            **cols,
            **{f"p_{c}": [] for c in CLASSES},
            "p_fn_given_neg": [],
            "p_fp_given_pos": [],
            "p_rel": [],
            "qa": [],
            "ca": [],
        }
    pred = predict_pairs(
        adapter,
        res.query_vectors,
        res.corpus.vectors,
        np.array([qrow[q] for q in cols["query_id"]]),
        np.array([drow[d] for d in cols["doc_id"]]),
    )
    for i, c in enumerate(CLASSES):
        cols[f"p_{c}"] = pred["probs"][:, i].tolist()
    for k in ("p_fn_given_neg", "p_fp_given_pos", "p_rel", "qa", "ca"):
        cols[k] = pred[k].tolist()
    return cols


def train_phase2(
    run: Run,
    enc_cfg: EncoderConfig,
    switches: AdapterSwitches,
    labels: LabelConfig,
    p2: Phase2Config,
    train_data: Dataset | None = None,
    corrections: LabelCorrections | None = None,
) -> dict[str, Any]:
    """Train an adapter on frozen embeddings of ``enc_cfg.model``; returns its metrics.

    ``progress.json`` follows the stages (encoding, labels, training, predictions)
    so a page can show a progress bar while this runs in another process.
    ``train_data.qrels`` are the labels to train on (``corrections.qrels`` when
    retraining with corrections); ``corrections.verdicts`` become the adapter's
    human-labelled pairs.
    """

    def stage(name: str, done: float) -> None:
        run.write_json("progress.json", {"phase": 2, "stage": name, "fraction": round(done, 4), "status": "running"})

    device = resolve_device(enc_cfg.device)
    train_data = train_data or load_dataset(switches.dataset, switches.train_split)
    if switches.max_train_queries is not None and switches.max_train_queries < len(train_data.qrels):
        rng = np.random.default_rng(switches.subsample_seed)
        keep = sorted(rng.choice(sorted(train_data.qrels), size=switches.max_train_queries, replace=False).tolist())
        train_data = replace(
            train_data, qrels={q: train_data.qrels[q] for q in keep}, queries={q: train_data.queries[q] for q in keep}
        )
    stage("loading the encoder", 0.0)
    encoder = BiEncoder.from_pretrained(enc_cfg.model, shared=enc_cfg.shared).to(device).eval()
    deep = max(labels.top_k, labels.fp_rank_range[1]) if labels.scheme == "synthetic" else labels.top_k
    last = [0.0]

    def on_encode(done: int, total: int) -> None:
        if done == total or done / total - last[0] >= 0.02:  # throttle writes
            last[0] = done / total
            stage("encoding the corpus", 0.7 * done / total)

    res = retrieve(
        encoder,
        train_data.corpus,
        train_data.queries,
        enc_cfg,
        k=deep,
        index_kind=switches.index_kind,
        progress="phase 2: encoding corpus",
        callback=on_encode,
    )
    stage("building adapter labels", 0.72)
    ranked = rank_run(res.run)
    candidates = {q: r[: labels.top_k] for q, r in ranked.items()}
    verdicts = corrections.verdicts if corrections is not None else None
    pairs = build_adapter_pairs(train_data.qrels, candidates, labels, verdicts=verdicts, deep_candidates=ranked)
    stage("training the adapter", 0.75)

    torch.manual_seed(p2.seed)
    cfg = AdapterConfig(
        dim=encoder.dim,
        hidden=switches.hidden,
        residual=switches.residual,
        zero_init=switches.zero_init,
        head_init=switches.head_init,
    )
    adapter = RRRAAdapter(cfg).to(device)
    metrics = train_adapter(
        adapter, pairs, (res.query_ids, res.query_vectors), (res.corpus.ids, res.corpus.vectors), p2, run=run
    )
    save_adapter(adapter, cfg, run.file("adapter"))
    stage("scoring candidates", 0.95)
    _write_predictions(run, pool_predictions(adapter, res, train_data.qrels, labels.top_k))
    run.write_json("metrics.json", metrics)
    run.write_json("progress.json", {"phase": 2, "stage": "done", "fraction": 1.0, "status": "done"})
    return metrics


def _write_predictions(run: Run, cols: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = run.file("predictions.parquet.tmp")
    pq.write_table(pa.table(cols), tmp)
    tmp.replace(run.file("predictions.parquet"))
