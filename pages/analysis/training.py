"""Training dynamics: a run's loss curves and per-epoch metrics, and the gradient analysis across samplers.

Everything is read from run folders (``log.jsonl``, ``metrics.json``,
``gradients.parquet``) through cached loaders; the maths is in
``rrra_core.analysis.dynamics``. The gradient section overlays several phase-3 runs,
by default the sibling runs of one benchmark seed (same id prefix), which
differ only in their hard-negative sampler.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from pages.common import keys
from pages.common import resources as res
from pages.common.downloads import chart, csv_button
from rrra_core.analysis.comparison import VARIANT_LABELS, run_metric_variants
from rrra_core.analysis.dynamics import (
    ALL_CATEGORIES,
    CATEGORY_LABELS,
    epoch_boundaries,
    epoch_table,
    hard_negative_note,
    loss_curves,
    series_labels,
    sibling_runs,
)

PALETTE = qualitative.Plotly
KIND_NAMES = {"phase1": "phase 1 (bi-encoder)", "phase2": "phase 2 (adapter)", "phase3": "phase 3 (joint)"}
UNIT_LOGGED, UNIT_SHARE = "p_j/τ (as logged)", "p_j (softmax share)"


def _label(row: pd.Series) -> str:
    extra = f" · {row['sampler']}" if isinstance(row.get("sampler"), str) else ""
    return f"{row['run']} · {KIND_NAMES.get(row['kind'], row['kind'] or '?')}{extra}"


def _category_name(cat: str) -> str:
    return "all sampled negatives" if cat == ALL_CATEGORIES else CATEGORY_LABELS.get(cat, cat)


st.title("Training dynamics")
st.caption("Loss curves and per-epoch metrics of one run, and how hard each sampler pushes on each kind of negative.")

overview = res.runs_overview()
logged = overview[overview["has log"]].reset_index(drop=True)
if logged.empty:
    st.info("No training run yet. Runs appear here once a training job has logged its first step.")
    st.stop()

labels = {r["run"]: _label(r) for _, r in logged.iterrows()}
if st.session_state.get(keys.DYN_RUN) not in labels:
    st.session_state.pop(keys.DYN_RUN, None)
run_id = st.selectbox(
    "Run",
    list(labels),
    format_func=lambda r: labels[r],
    key=keys.DYN_RUN,
    help="Every run with a training log, newest first.",
)
row = logged.set_index("run").loc[run_id]
kind = row["kind"]
metrics = res.run_json(run_id, "metrics.json", {}) or {}
steps = res.steps(run_id)

# --- loss curves ---------------------------------------------------------------
st.subheader("Loss")
if steps.empty:
    st.info("This run has not logged a training step yet.")
else:
    n_steps = len(steps)
    if keys.DYN_SMOOTH not in st.session_state:
        st.session_state[keys.DYN_SMOOTH] = max(1, min(50, n_steps // 25))
    smooth = st.slider(
        "Smoothing (trailing mean over steps)",
        1,
        max(2, min(200, n_steps)),
        key=keys.DYN_SMOOTH,
        help="1 shows every step as logged. The faint line is always the raw value.",
    )
    curves = loss_curves(steps, smooth=min(smooth, n_steps))
    fig = go.Figure()
    for i, (series, g) in enumerate(curves.groupby("series", sort=False)):
        colour = PALETTE[i % len(PALETTE)]
        if smooth > 1:
            fig.add_trace(
                go.Scatter(
                    x=g["step"],
                    y=g["value"],
                    mode="lines",
                    line={"color": colour, "width": 1},
                    opacity=0.25,
                    name=f"{series} (raw)",
                    legendgroup=series,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=g["step"],
                y=g["smoothed"],
                mode="lines",
                line={"color": colour, "width": 2},
                name=series,
                legendgroup=series,
                hovertemplate=f"{series}<br>step %{{x}}<br>%{{y:.4f}}<extra></extra>",
            )
        )
    for b in epoch_boundaries(steps):
        fig.add_vline(x=b + 0.5, line={"dash": "dot", "color": "#999", "width": 1})
    fig.update_layout(
        xaxis_title="optimizer step",
        yaxis_title="loss",
        height=380,
        margin={"t": 30, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    chart(fig, f"{run_id}-loss", key=keys.DYN_LOSS_CHART)
    st.caption(
        "Dotted lines mark epoch ends. "
        "Phase 3 logs the adapter's L_norm for monitoring only; it is not part of that phase's loss."
    )
    extra = [c for c in ("grad_norm", "lr", "lr_scale") if c in steps.columns]
    with st.expander("Learning rate and gradient norm"):
        if extra:
            sub = make_subplots(
                rows=1,
                cols=len(extra),
                subplot_titles=[
                    {
                        "grad_norm": "gradient norm (before clipping)",
                        "lr": "learning rate",
                        "lr_scale": "learning-rate scale",
                    }[c]
                    for c in extra
                ],
            )
            for j, c in enumerate(extra, start=1):
                sub.add_trace(
                    go.Scatter(
                        x=steps["step"],
                        y=steps[c],
                        mode="lines",
                        name=c,
                        showlegend=False,
                        hovertemplate=f"{c}<br>step %{{x}}<br>%{{y:.4g}}<extra></extra>",
                    ),
                    row=1,
                    col=j,
                )
            sub.update_layout(height=280, margin={"t": 40, "b": 30})
            chart(sub, f"{run_id}-lr-gradnorm", key=keys.DYN_LR_CHART)
        csv_button(steps, f"{run_id}-steps", label="Download the step log (CSV)", key=keys.DYN_STEPS_CSV)

# --- per-epoch metrics ---------------------------------------------------------
st.subheader("Per-epoch metrics")
epochs = epoch_table(kind, metrics, steps)
value_cols = [c for c in epochs.columns if c not in ("epoch", "step")]
if epochs.empty or not value_cols:
    st.info("No epoch has finished yet.")
else:
    if kind == "phase1":
        st.caption("Retrieval on the evaluation split after every epoch; epoch 0 is the starting encoder.")
    elif kind == "phase2":
        st.caption("The adapter's four-class macro-F1 and accuracy on held-out queries after every epoch.")
    elif kind == "phase3":
        st.caption("Phase 3 evaluates retrieval only at the end (below); per epoch there is the mean training loss.")
    defaults = [c for c in ("nDCG@10", "R@100", "val_macro_f1", "train loss (mean)") if c in value_cols][
        :2
    ] or value_cols[:1]
    current = st.session_state.get(keys.DYN_EPOCH_METRICS)
    if st.session_state.get(keys.DYN_EPOCH_FOR) != run_id or current is None or not set(current) <= set(value_cols):
        # Each run starts from its own headline metrics.
        st.session_state[keys.DYN_EPOCH_FOR] = run_id
        st.session_state[keys.DYN_EPOCH_METRICS] = defaults
    shown = st.multiselect("Metrics to plot", value_cols, key=keys.DYN_EPOCH_METRICS)
    if shown and len(epochs) > 1:
        fig = go.Figure()
        for i, m in enumerate(shown):
            fig.add_trace(
                go.Scatter(
                    x=epochs["epoch"],
                    y=epochs[m],
                    mode="lines+markers",
                    name=m,
                    line={"color": PALETTE[i % len(PALETTE)]},
                    hovertemplate=f"{html.escape(m)}<br>epoch %{{x}}<br>%{{y:.4f}}<extra></extra>",
                )
            )
        fig.update_layout(
            xaxis_title="epoch",
            xaxis={"dtick": 1},
            height=320,
            margin={"t": 30, "b": 40},
            legend={"orientation": "h", "y": -0.25},
        )
        chart(fig, f"{run_id}-epochs", key=keys.DYN_EPOCH_CHART)
    st.dataframe(epochs, hide_index=True, key=keys.DYN_EPOCH_TABLE)
    csv_button(epochs, f"{run_id}-epochs", key=keys.DYN_EPOCH_CSV)

final = run_metric_variants(kind, metrics)
if kind == "phase3" and final:
    st.markdown("**Final evaluation**")
    wide = pd.DataFrame({VARIANT_LABELS.get(v, v): pd.Series(vals) for v, vals in final.items()})
    wide.index.name = "metric"
    wide = wide.reset_index()
    if {"no_rerank", "rerank"} <= set(final):
        wide["rerank gain"] = wide[VARIANT_LABELS["rerank"]] - wide[VARIANT_LABELS["no_rerank"]]
    st.dataframe(wide, hide_index=True, key=keys.DYN_FINAL_TABLE)
    csv_button(wide, f"{run_id}-final", key=keys.DYN_FINAL_CSV)
if kind == "phase3" and (note := hard_negative_note(metrics)):
    st.warning(note)  # counts only, no ids: nothing here for Markdown to interpret

# --- gradient analysis ---------------------------------------------------------
st.subheader("Gradient analysis")
st.caption(
    "With InfoNCE, the gradient on a negative's score is p_j/τ (its softmax probability over the temperature). "
    "A sampler that keeps drawing false negatives spends large gradients pushing relevant documents away; "
    "RRRA's resampling should take that force off them. RRRA.md: the paper reports about 0.55–0.65 for RRRA-resampled "
    "negatives against 0.65–0.85 for plain top-k mining (among the top 200), without stating its normalisation, "
    "so compare the order of the samplers rather than absolute values."
)
with_grads = overview[(overview["kind"] == "phase3") & overview["has gradients"]].reset_index(drop=True)
if with_grads.empty:
    st.info("No phase-3 run has a gradient log yet. Phase 3 writes gradients.parquet when it finishes.")
    st.stop()

grad_labels = {r["run"]: f"{r['sampler'] or '?'} · {r['run']}" for _, r in with_grads.iterrows()}
defaults = [r for r in sibling_runs(run_id, grad_labels) if r in grad_labels]
if not defaults:
    # The picked run has no phase-3 siblings: start from the newest phase-3 run's seed instead.
    newest = with_grads["run"].iloc[0]
    defaults = [r for r in sibling_runs(newest, grad_labels) if r in grad_labels]
chosen_runs = st.session_state.get(keys.DYN_GRAD_RUNS)
if chosen_runs is not None and not set(chosen_runs) <= set(grad_labels):
    st.session_state.pop(keys.DYN_GRAD_RUNS, None)
if st.session_state.get(keys.DYN_GRAD_FOR) != run_id or keys.DYN_GRAD_RUNS not in st.session_state:
    # A new run picked above: offer its benchmark siblings again.
    st.session_state[keys.DYN_GRAD_FOR] = run_id
    st.session_state[keys.DYN_GRAD_RUNS] = defaults
picked = st.multiselect(
    "Phase-3 runs to compare",
    list(grad_labels),
    format_func=lambda r: grad_labels[r],
    key=keys.DYN_GRAD_RUNS,
    help="By default the runs sharing this run's id prefix: one benchmark seed's samplers.",
)
if not picked:
    st.info("Pick one or more phase-3 runs (for example the samplers of one benchmark seed).")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
kind_choice = c1.radio(
    "Negatives",
    ["hard", "random", "both"],
    key=keys.DYN_GRAD_KIND,
    horizontal=True,
    help="Hard negatives are the ones the sampler drew; random negatives are the same for every sampler.",
)
unit = c2.radio(
    "Unit",
    [UNIT_LOGGED, UNIT_SHARE],
    key=keys.DYN_GRAD_UNIT,
    help="p_j removes the temperature, for runs trained with different τ.",
)
stat = c3.radio("Over training", ["mean", "median"], key=keys.DYN_GRAD_STAT, horizontal=True)
buckets = c4.slider("Step buckets", 2, 50, 10, key=keys.DYN_GRAD_BUCKETS)

info = with_grads.set_index("run")
names = series_labels({r: str(info.loc[r, "sampler"] or "?") for r in picked})
scale = {names[r]: float(info.loc[r, "temperature"]) for r in picked} if unit == UNIT_SHARE else None
kinds = ["hard", "random"] if kind_choice == "both" else [kind_choice]
dist, over = res.gradient_views(names, kinds, scale, buckets)
if dist.empty:
    st.info(f"The picked runs logged no {kind_choice} negatives.")
    st.stop()
series_order = list(dict.fromkeys(dist["series"]))
colours = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series_order)}
y_title = "gradient magnitude p_j/τ" if unit == UNIT_LOGGED else "softmax share p_j"

# Distribution per category, one box per sampler: the paper's comparison.
fig = go.Figure()
for s in series_order:
    d = dist[dist["series"] == s]
    if d.empty:
        continue
    fig.add_trace(
        go.Box(
            name=html.escape(s),
            x=[_category_name(c) for c in d["category"]],
            q1=d["q1"],
            median=d["median"],
            q3=d["q3"],
            lowerfence=d["lowerfence"],
            upperfence=d["upperfence"],
            mean=d["mean"],
            boxmean=True,
            marker_color=colours[s],
            boxpoints=False,
        )
    )
fig.update_layout(
    boxmode="group", yaxis_title=y_title, height=420, margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.2}
)
chart(fig, "gradient-magnitude-by-category", key=keys.DYN_GRAD_BOX)
st.caption("Boxes: quartiles; whiskers: the most extreme values within 1.5 IQR; dashed line: mean.")

summary = dist.assign(category=[_category_name(c) for c in dist["category"]]).rename(columns={"series": "sampler"})
st.dataframe(
    summary,
    hide_index=True,
    key=keys.DYN_GRAD_SUMMARY,
    column_config={"share": st.column_config.NumberColumn(format="%.3f")},
)
csv_button(summary, "gradient-summary", key=keys.DYN_GRAD_SUMMARY_CSV)

# Over training: one panel per category, one line per sampler.
cats = [c for c in CATEGORY_LABELS if c in set(over["category"])] + sorted(set(over["category"]) - set(CATEGORY_LABELS))
fig = make_subplots(rows=1, cols=len(cats), shared_yaxes=True, subplot_titles=[_category_name(c) for c in cats])
in_legend: set[str] = set()
for j, c in enumerate(cats, start=1):
    for s in series_order:
        d = over[(over["series"] == s) & (over["category"] == c)]
        if d.empty:
            continue
        name = html.escape(s)
        fig.add_trace(
            go.Scatter(
                x=d["step_mid"],
                y=d[stat],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                showlegend=s not in in_legend,
                line={"color": colours[s]},
                customdata=d[["step_lo", "step_hi", "count"]].to_numpy(),
                hovertemplate=(
                    f"{name}<br>steps %{{customdata[0]}}–%{{customdata[1]}}"
                    f"<br>{stat} %{{y:.3f}} (n=%{{customdata[2]}})<extra></extra>"
                ),
            ),
            row=1,
            col=j,
        )
        in_legend.add(s)
fig.update_layout(height=380, margin={"t": 70, "b": 40}, legend={"orientation": "h", "y": -0.25})
fig.update_yaxes(title_text=f"{stat} {y_title}", row=1, col=1)
fig.update_xaxes(title_text="optimizer step")
chart(fig, "gradient-magnitude-over-training", key=keys.DYN_GRAD_OVER)
csv_button(over, "gradient-over-training", label="Download the per-bucket values (CSV)", key=keys.DYN_GRAD_OVER_CSV)
