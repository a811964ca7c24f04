"""The human-in-the-loop curve on the Ablations page: quality after retraining against items reviewed.

Reads a ``results/hitl_<dataset>.json`` written by ``scripts/bench_hitl.py``:
one line per queue order with mean ± std over seeds as error bars, and the
two bounds (no review; nothing hidden) as horizontal lines with their std as
a band, so a reader sees at once how much of the gap each N closes.
"""

from __future__ import annotations

import math
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from rrra_core.analysis.results_view import HITL_METRICS, hitl_curve, list_hitl_files, load_hitl
from rrra_core.runtime.errors import DataError

from . import keys
from .downloads import chart, csv_button
from .widgets import md_escape

ORDER_COLOURS = {"learnt": "#d84315", "retriever": "#1565c0", "adapter": "#6a1b9a"}
BOUND_STYLE = {"upper": ("#2e7d32", "upper bound: nothing hidden"), "lower": ("#616161", "lower bound: no review")}


def _figure(curve, bounds: dict, metric: str) -> go.Figure:  # noqa: ANN001 - a DataFrame
    fig = go.Figure()
    n_max = max(curve["N"].max() if not curve.empty else 1, 1)
    for name, (colour, label) in BOUND_STYLE.items():
        if name not in bounds:
            continue
        mean, std = bounds[name][metric]["mean"], bounds[name][metric]["std"]
        fig.add_hrect(y0=mean - std, y1=mean + std, fillcolor=colour, opacity=0.08, line_width=0)
        fig.add_hline(y=mean, line_dash="dash", line_color=colour, annotation_text=f"{label} ({mean:.4f})")
    for order, part in curve.groupby("order", sort=False):
        fig.add_trace(
            go.Scatter(
                x=part["N"],
                y=part[metric],
                error_y={"type": "data", "array": part[f"{metric} std"], "visible": True},
                mode="lines+markers",
                name=f"{order} order",
                line={"color": ORDER_COLOURS.get(str(order), "#455a64")},
                customdata=part[["found", "seeds"]],
                hovertemplate="N=%{x}<br>%{y:.4f}<br>%{customdata[0]:.1f} false negatives found<br>"
                "%{customdata[1]} seeds<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"{metric} after retraining vs. items reviewed (mean ± std over seeds)",
        xaxis={"title": "items reviewed (N)", "type": "log", "range": [1.2, 0.05 + math.log10(n_max)]},
        yaxis={"title": metric},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def hitl_section(folder: Path) -> bool:
    """Draw the human-in-the-loop benchmark of ``folder`` if it has one; returns whether it did."""
    files = list_hitl_files(folder)
    if not files:
        return False
    names = [p.name for p in files]
    name = names[0] if len(names) == 1 else st.selectbox("Human-in-the-loop file", names, key=keys.BENCH_HITL_FILE)
    try:
        result = load_hitl(folder / name)
    except DataError as err:
        st.error(md_escape(str(err)))
        return True
    curve, bounds = hitl_curve(result)
    st.markdown(
        f"**{md_escape(name)}**: a simulated reviewer answers the first N items of the review queue, "
        "the labels are merged and the model is retrained with the same budget as the two bounds."
    )
    st.code(str(result.get("command", "")), language="bash", wrap_lines=True)
    metric = st.selectbox("Metric", list(HITL_METRICS), key=keys.for_file(keys.BENCH_HITL_METRIC, Path(name).stem))
    chart(_figure(curve, bounds, metric), f"{Path(name).stem}_{metric}", key=keys.BENCH_HITL_CURVE_CHART)
    summary = result["summary"]
    cells = ", ".join(f"N={n}: {'–' if f is None else f'{100 * f:.0f} %'}" for n, f in summary["recovered_at"].items())
    st.caption(
        md_escape(
            f"Share of the lost {summary.get('metric', 'nDCG@10')} recovered ({summary.get('order')} "
            f"order, means over seeds): {cells}."
        )
    )
    for note in result.get("notes") or []:
        st.caption(md_escape(note))
    st.dataframe(curve, hide_index=True, key=keys.BENCH_HITL_CURVE_TABLE)
    csv_button(curve, f"{Path(name).stem}_curve", key=keys.BENCH_HITL_CURVE_CSV)
    return True
