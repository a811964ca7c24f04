"""The four headline numbers of the run chosen in the sidebar, whatever its kind.

A phase-2 run (the demo, a base) is summed up by its adapter's held-out
four-class F1; a retrain's phase-3 run, by its retrieval after fine-tuning
on the corrected labels. Both read only the run's ``metrics.json``.
"""

from __future__ import annotations

import streamlit as st

from rrra_core.runtime.reports import upgrade_metrics

from . import resources as res


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "—"


def run_headline(run_id: str) -> None:
    """Four ``st.metric`` tiles for ``run_id``."""
    kind = (res.run_json(run_id, "config.json", {}) or {}).get("kind") or "phase2"
    metrics = upgrade_metrics(res.run_json(run_id, "metrics.json", {}) or {}, kind)
    after, trained = metrics.get("after") or {}, metrics.get("train") or {}
    cols = st.columns(4)
    if kind == "phase3":
        cols[0].metric("nDCG@10 (eval split)", _fmt(after.get("nDCG@10")))
        cols[1].metric("R@100 (eval split)", _fmt(after.get("R@100")))
        cols[2].metric("Training pairs", _fmt(trained.get("pairs"), ","))
        cols[3].metric("Optimizer steps", _fmt(trained.get("steps"), ","))
        return
    cols[0].metric("Adapter macro-F1 (held-out queries)", _fmt(after.get("macro_f1")))
    cols[1].metric("F1 on false negatives", _fmt((after.get("f1") or {}).get("FN")))
    pairs = trained.get("pairs") if isinstance(trained.get("pairs"), dict) else {}
    cols[2].metric("Training pairs", _fmt(pairs.get("train"), ",") if pairs else "—")
    queries = trained.get("queries") if isinstance(trained.get("queries"), dict) else {}
    cols[3].metric("Queries scored", _fmt(queries.get("train", 0) + queries.get("val", 0), ",") if queries else "—")
