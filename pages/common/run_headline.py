"""The headline of the run chosen in the sidebar, whatever its kind: what it was built from, four numbers, warnings.

A phase-2 run (the demo, a base, a New project run) is summed up by its
adapter's held-out four-class F1; a retrain's phase-3 run, by its retrieval
after fine-tuning on the corrected labels. A line above the numbers names the
dataset (by name, not the folder's full path) and the encoder; warnings the
training recorded (``metrics.json`` ``train.warnings``, e.g. too few held-out
queries to choose the adapter's epoch) are shown under them, not left in the
job's log. A line under the tiles says whether the run reranks, with which
signal and strength, and the dev evidence its choice rests on (issue 29).
Everything comes from the run's ``config.json`` and ``metrics.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from rrra_core.retrieval.rerank_choice import run_rerank_choice
from rrra_core.runtime.reports import upgrade_metrics
from rrra_core.runtime.run_config import parse_run_config

from . import resources as res
from .widgets import md_code, md_escape


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "—"


def short_name(value: str | None) -> str | None:
    """A dataset or model as people name it: an embedded name as is, a folder by its last part."""
    if not value:
        return None
    text = str(value).rstrip("/\\")
    return (Path(text).name or text) if ("/" in text or "\\" in text) else text


def built_from(config: dict[str, Any]) -> str | None:
    """``dataset adi_copy (test split) · encoder all-MiniLM-L6-v2``: what a run was built from, in one line."""
    saved = parse_run_config(config or {})
    parts = []
    if (dataset := short_name(saved.dataset)) is not None:
        parts.append(
            f"dataset {md_code(dataset)}" + (f" ({md_escape(saved.train_split)} split)" if saved.train_split else "")
        )
    if (encoder := short_name((saved.encoder or {}).get("model"))) is not None:
        parts.append(f"encoder {md_code(encoder)}")
    return " · ".join(parts) or None


def rerank_line(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """``Rerank: on · qa, λ 2 · best qa:2: dev nDCG@10 +0.0123 over off (Holm p 0.003, 150 queries) · level 0.05``."""
    choice = run_rerank_choice(config, metrics)
    if choice is None:
        return "Rerank: not chosen for this run (built before runs chose their rerank on dev)"
    return f"Rerank: {md_escape(choice.summary())}"


def run_headline(run_id: str) -> None:
    """What ``run_id`` was built from, four ``st.metric`` tiles and the warnings its training recorded."""
    config = res.run_json(run_id, "config.json", {}) or {}
    kind = config.get("kind") or "phase2"
    if (line := built_from(config)) is not None:
        st.caption(line)
    metrics = upgrade_metrics(res.run_json(run_id, "metrics.json", {}) or {}, kind)
    after, trained = metrics.get("after") or {}, metrics.get("train") or {}
    cols = st.columns(4)
    if kind == "phase3":
        cols[0].metric("nDCG@10 (eval split)", _fmt(after.get("nDCG@10")))
        cols[1].metric("R@100 (eval split)", _fmt(after.get("R@100")))
        cols[2].metric("Training pairs", _fmt(trained.get("pairs"), ","))
        cols[3].metric("Optimizer steps", _fmt(trained.get("steps"), ","))
    else:
        cols[0].metric("Adapter macro-F1 (held-out queries)", _fmt(after.get("macro_f1")))
        cols[1].metric("F1 on false negatives", _fmt((after.get("f1") or {}).get("FN")))
        pairs = trained.get("pairs") if isinstance(trained.get("pairs"), dict) else {}
        cols[2].metric("Training pairs", _fmt(pairs.get("train"), ",") if pairs else "—")
        queries = trained.get("queries") if isinstance(trained.get("queries"), dict) else {}
        cols[3].metric("Queries scored", _fmt(queries.get("train", 0) + queries.get("val", 0), ",") if queries else "—")
    st.caption(rerank_line(config, metrics))
    for warning in trained.get("warnings") or []:
        st.warning(f"Training warned: {md_escape(str(warning))}", icon=":material/warning:")
