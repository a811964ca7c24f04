"""The Overview's calibration section: P(FN|neg) of this run against the human judgments of its negatives."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from rrra_core.review.calibration import MIN_VERDICTS, Reliability, reliability, suggest_threshold

from . import keys
from .downloads import chart


def reliability_figure(rel: Reliability) -> go.Figure:
    """Observed share of false negatives against mean P(FN|neg) per bin, and the diagonal a calibrated model is on."""
    bins = rel.bins
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line={"dash": "dash", "color": "grey"})
    )
    fig.add_trace(
        go.Scatter(
            x=bins["mean_p"],
            y=bins["observed"],
            mode="lines+markers",
            name="this run",
            marker={"size": 6 + 14 * (bins["n"] / bins["n"].max()) ** 0.5},
            customdata=bins[["lo", "hi", "n"]].to_numpy(),
            hovertemplate="P(FN|neg) %{customdata[0]:.1f}–%{customdata[1]:.1f}<br>mean %{x:.2f}, "
            "false negatives %{y:.2f}<br>%{customdata[2]} judged<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis={"title": "P(FN|neg) (mean in the bin)", "range": [0, 1]},
        yaxis={"title": "judged false negatives (share)", "range": [0, 1]},
        height=360,
        margin={"t": 20, "b": 40},
    )
    return fig


def calibration_section(verdicts: pd.DataFrame, run_id: str) -> None:
    """Reliability diagram, ECE and a suggested threshold once enough of this run's negatives are judged.

    ``verdicts`` is :func:`pages.common.labels_count.judged_false_negatives`, the rows the Overview's
    "False negatives confirmed" counts too.
    """
    st.subheader("Calibration")
    n = len(verdicts)
    if n < MIN_VERDICTS:
        st.caption(
            f"How far P(FN|neg) can be taken at its word, measured on the judged negatives of this run: "
            f"{n} judged so far, {MIN_VERDICTS - n} more needed."
        )
        return
    rel = reliability(verdicts["p_fn_given_neg"], verdicts["verdict"])
    tip = suggest_threshold(verdicts["p_fn_given_neg"], verdicts["verdict"])
    c = st.columns(3)
    c[0].metric(
        "Judged negatives",
        f"{n:,}",
        help="Labelled negatives of this run with a relevant or not-relevant verdict (several annotators vote; "
        "unsure abstains; an adjudication overrules the votes)",
    )
    c[1].metric(
        "Expected calibration error",
        f"{rel.ece:.3f}",
        help="Mean gap between P(FN|neg) and the share judged false negatives, over 10 equal-width bins, "
        "weighted by the judged items in each",
    )
    c[2].metric(
        "Judged false negatives",
        f"{int(verdicts['verdict'].sum()):,}",
        help="The judged negatives the verdicts call relevant: the Overview's 'False negatives confirmed'.",
    )
    chart(reliability_figure(rel), f"{run_id}-reliability", key=keys.RELIABILITY_CHART)
    detail = ""
    if tip.interval is not None:
        detail = f" (95 % interval {tip.interval[0]:.0%}–{tip.interval[1]:.0%})"
    st.markdown(f"**Suggested threshold.** {tip.sentence}{detail}")
    st.caption(
        "Measured on the judged items only, which the review queue chose: a threshold holds for the rest of the "
        "pool as far as it looks like them."
    )
