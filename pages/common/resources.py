"""The one module that caches heavy objects for the app.

Pages call these functions and never load datasets, models or indexes
themselves, so each is loaded once per process (``st.cache_resource``) or once
per input (``st.cache_data``) and never mutated.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from rrra_core.data import load_dataset
from rrra_core.paths import DEMO_DATASETS
from rrra_core.runs import list_runs


@st.cache_data(show_spinner="Loading dataset statistics…")
def dataset_stats(name: str) -> dict[str, Any]:
    """Counts for one embedded dataset across its splits."""
    from rrra_core.data import available_splits, dataset_folder

    out: dict[str, Any] = {"dataset": name}
    for split in available_splits(dataset_folder(name)):
        data = load_dataset(name, split)
        out["documents"] = len(data.corpus)
        out[f"{split} queries"] = len(data.queries)
        out[f"{split} positives/query"] = round(sum(len(v) for v in data.qrels.values()) / max(len(data.qrels), 1), 2)
    return out


@st.cache_data(ttl=5)
def runs_table() -> list[dict[str, Any]]:
    """One row per run folder with its kind and headline metrics (refreshed every few seconds)."""
    rows = []
    for run in list_runs():
        cfg = run.read_json("config.json", {})
        metrics = run.read_json("metrics.json", {}) or {}
        after = metrics.get("after") or {}
        before = metrics.get("before") or {}
        rows.append(
            {
                "run": run.id,
                "kind": cfg.get("kind"),
                "dataset": (cfg.get("train") or {}).get("dataset"),
                "nDCG@10 before": before.get("nDCG@10"),
                "nDCG@10 after": after.get("nDCG@10"),
                "R@100 after": after.get("R@100"),
                "status": (run.read_json("progress.json", {}) or {}).get("status"),
            }
        )
    return rows


DATASETS = DEMO_DATASETS
