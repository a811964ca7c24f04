"""Compare runs: two runs' metrics side by side, and query by query which queries B helped or hurt.

Typical use: A is the run before a relabel round, B the run retrained on the
corrected labels; or A and B are two samplers of one benchmark seed. The
per-query results come from each run's ``per_query.json``. Runs trained
before that file existed get it from ``scripts/per_query.py``, started here
as a background job: the page never encodes anything itself.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.common import jobs_view, keys
from pages.common import resources as res
from pages.common.downloads import chart, csv_button
from pages.common.widgets import md_code, md_escape, short, show_text
from rrra_core.analysis.comparison import (
    VARIANT_LABELS,
    classify_changes,
    config_differences,
    default_variant,
    newest_first,
    per_query_deltas,
    run_metric_variants,
    side_by_side,
    summarize_changes,
)
from rrra_core.runtime import jobs
from rrra_core.runtime.errors import UserError

CHANGE_COLOURS = {"helped": "#2e7d32", "hurt": "#c62828", "unchanged": "#90a4ae"}
KIND_NAMES = {
    "phase1": "phase 1",
    "phase2": "phase 2 (its encoder + adapter)",
    "phase3": "phase 3",
    "evaluation": "a retrain's base, evaluated (before)",
}


def _label(row: pd.Series) -> str:
    extra = f" · {row['sampler']}" if isinstance(row.get("sampler"), str) else ""
    return f"{row['run']} · {KIND_NAMES.get(row['kind'], row['kind'])}{extra}"


def _variant_picker(column, run_id: str, variants: list[str], key: str, key_for: str) -> str | None:
    """The ranking to compare for one side; ``key_for`` remembers which run its default was chosen for."""
    if not variants:
        column.caption("This run has no final evaluation yet.")
        return None
    if st.session_state.get(key) not in variants or st.session_state.get(key_for) != run_id:
        st.session_state[key] = default_variant(variants)
        st.session_state[key_for] = run_id
    if len(variants) == 1:
        column.caption(f"Ranking: {VARIANT_LABELS.get(variants[0], variants[0])}")
        return variants[0]
    return column.selectbox(
        "Ranking",
        variants,
        format_func=lambda v: VARIANT_LABELS.get(v, v),
        key=key,
        help="Phase-3 runs are scored with and without the adapter's reranking.",
    )


def _per_query_missing(side: str, run_id: str) -> None:
    """Offer (or follow) the background job that writes the run's per-query results."""
    state = jobs_view.per_query_job(run_id)
    if state is not None and state.active:
        _follow(side, run_id)
        return
    st.info(
        f"Run {side} ({md_code(run_id)}) has no per-query results yet: it was trained before runs kept them. "
        "Computing them loads its model and re-runs its final evaluation in the background."
    )
    if state is not None and state.status in ("failed", "lost"):
        st.error(f"The last attempt {state.status}: {state.error or 'the process ended without finishing'}")
        with st.expander("Job log"):
            show_text(jobs.log_tail(jobs_view.per_query_job_id(run_id), 40))
    if st.button(f"Compute per-query results for run {side}", key=keys.per_query_start(side), type="primary"):
        try:
            jobs_view.start_per_query(run_id)
        except UserError as err:
            st.error(str(err))
            return
        st.rerun()


def _follow(side: str, run_id: str) -> None:
    @st.fragment(run_every=1.0)
    def progress() -> None:
        state = jobs_view.per_query_job(run_id)
        if state is None or not state.active:
            st.rerun(scope="app")
            return
        st.info(f"Computing per-query results for run {side} ({md_code(run_id)}) in the background…")
        # The driver's progress bar redraws one line with carriage returns: show its latest state.
        tail = jobs.log_tail(jobs_view.per_query_job_id(run_id), 1).split("\r")[-1]
        if tail.strip():
            st.caption(md_escape(tail, 160))
        if st.button("Cancel", key=keys.per_query_cancel(side)):
            jobs_view.cancel(jobs_view.per_query_job_id(run_id))
            st.rerun(scope="app")

    progress()


st.title("Compare runs")
st.caption(
    "Two runs' metrics side by side, and query by query what changed: for example before and after a relabel round."
)

overview = res.runs_overview()
# Phase-2 runs count once a retrain has evaluated them for retrieval (they are the "before").
comparable = overview[
    (
        overview["kind"].isin(["phase1", "phase3", "evaluation"])
        | ((overview["kind"] == "phase2") & overview["eval split"].notna())
    )
    & (overview["status"] == "done")
].reset_index(drop=True)
if len(comparable) < 2:
    st.info("Comparing needs two finished phase-1 or phase-3 runs. Train or retrain a model and come back.")
    st.stop()
# Latest first by lineage, then time: a retrain's "before" (its base evaluated, written last) precedes its new run.
_modified = res.all_runs().set_index("run")["modified"]
_order = newest_first(
    {r: res.run_json(r, "config.json", {}) or {} for r in comparable["run"]},
    {r: float(_modified.get(r, 0.0)) for r in comparable["run"]},
)
comparable = comparable.set_index("run").loc[_order].reset_index()


def _default_a(runs: pd.DataFrame) -> str:
    """Run A when nobody chose one: the run just before the latest on the latest's data, so B is the latest."""
    latest = runs.iloc[0]
    same = runs[(runs["dataset"] == latest["dataset"]) & (runs["eval split"] == latest["eval split"])]
    return str(same["run"].iloc[1] if len(same) > 1 else runs["run"].iloc[1])


labels = {r["run"]: _label(r) for _, r in comparable.iterrows()}
info = comparable.set_index("run")
col_a, col_b = st.columns(2)
# The Retrain page hands over "before" and "after" when people press Compare.
for handed, key in ((keys.RETRAIN_COMPARE_A, keys.CMP_RUN_A), (keys.RETRAIN_COMPARE_B, keys.CMP_RUN_B)):
    if st.session_state.get(handed) in labels:
        st.session_state[key] = st.session_state.pop(handed)
if st.session_state.get(keys.CMP_RUN_A) not in labels:
    st.session_state[keys.CMP_RUN_A] = _default_a(comparable)  # before → after
run_a = col_a.selectbox("Run A (before)", list(labels), format_func=lambda r: labels[r], key=keys.CMP_RUN_A)
same = comparable[
    (comparable["dataset"] == info.loc[run_a, "dataset"])
    & (comparable["eval split"] == info.loc[run_a, "eval split"])
    & (comparable["run"] != run_a)
]["run"].tolist()
if not same:
    st.warning(
        f"No other finished run is evaluated on the same data as run A ({md_code(info.loc[run_a, 'dataset'])}, "
        f"split {md_code(info.loc[run_a, 'eval split'])}). Pick another run A."
    )
    st.stop()
if st.session_state.get(keys.CMP_RUN_B) not in same:
    st.session_state[keys.CMP_RUN_B] = same[0]
run_b = col_b.selectbox(
    "Run B (after)",
    same,
    format_func=lambda r: labels[r],
    key=keys.CMP_RUN_B,
    help="Runs evaluated on the same dataset and split as run A.",
)

# Where each run comes from, for retrained runs: the rounds, the verdicts and the policy.
_lineage = res.all_runs().set_index("run")["lineage"]
for column, run_id in ((col_a, run_a), (col_b, run_b)):
    if isinstance(_lineage.get(run_id), str):
        column.caption(md_escape(_lineage[run_id]))


def _metrics(run_id: str) -> dict:
    # A phase-2 run's retrieval metrics live in the file its retrain evaluation wrote.
    return (
        res.run_json(run_id, "retrieval_eval.json" if info.loc[run_id, "kind"] == "phase2" else "metrics.json", {})
        or {}
    )


metrics_a = run_metric_variants(info.loc[run_a, "kind"], _metrics(run_a))
metrics_b = run_metric_variants(info.loc[run_b, "kind"], _metrics(run_b))
variant_a = _variant_picker(col_a, run_a, list(metrics_a), keys.CMP_VARIANT_A, keys.CMP_VARIANT_A_FOR)
variant_b = _variant_picker(col_b, run_b, list(metrics_b), keys.CMP_VARIANT_B, keys.CMP_VARIANT_B_FOR)
if variant_a is None or variant_b is None:
    st.stop()

# --- side by side ---------------------------------------------------------------
st.subheader("Metrics side by side")
table = side_by_side(metrics_a[variant_a], metrics_b[variant_b])
shown = table.rename(columns={"delta": "B − A", "relative": "B / A − 1"})
st.dataframe(
    shown,
    hide_index=True,
    key=keys.CMP_METRICS_TABLE,
    column_config={"B / A − 1": st.column_config.NumberColumn(format="percent")},
)
csv_button(
    shown.assign(run_A=run_a, ranking_A=variant_a, run_B=run_b, ranking_B=variant_b),
    f"compare-{run_a}-vs-{run_b}",
    key=keys.CMP_METRICS_CSV,
)
fig = go.Figure()
for side, col, colour, run_id in (("A", "A", "#90a4ae", run_a), ("B", "B", "#1565c0", run_b)):
    name = html.escape(f"{side}: {run_id}")
    fig.add_trace(
        go.Bar(
            x=table["metric"],
            y=table[col],
            name=name,
            marker_color=colour,
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
        )
    )
fig.update_layout(
    barmode="group", yaxis_title="value", height=340, margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": -0.2}
)
chart(fig, f"compare-{run_a}-vs-{run_b}", key=keys.CMP_METRICS_CHART)

cfg_a = res.run_json(run_a, "config.json", {}) or {}
cfg_b = res.run_json(run_b, "config.json", {}) or {}
diff = config_differences(cfg_a, cfg_b)
with st.expander(f"Settings that differ ({len(diff)})"):
    if diff.empty:
        st.caption("The two runs were trained with identical settings.")
    else:
        st.dataframe(diff, hide_index=True, key=keys.CMP_CONFIG_DIFF)
        csv_button(diff, f"settings-{run_a}-vs-{run_b}", key=keys.CMP_CONFIG_CSV)

# --- per query --------------------------------------------------------------------
st.subheader("Per query")
pq_a, pq_b = res.per_query(run_a), res.per_query(run_b)
if pq_a is None:
    _per_query_missing("A", run_a)
if pq_b is None:
    _per_query_missing("B", run_b)
if pq_a is None or pq_b is None:
    st.stop()
if variant_a not in pq_a.variants or variant_b not in pq_b.variants:
    st.warning(
        "The per-query results lack the chosen ranking; "
        "recompute them with `python scripts/per_query.py --force --run <run>`."
    )
    st.stop()
if (pq_a.dataset, pq_a.split) != (pq_b.dataset, pq_b.split):
    st.warning(
        f"Run A's per-query results are on {md_code(pq_a.dataset + '/' + pq_a.split)} "
        f"and run B's on {md_code(pq_b.dataset + '/' + pq_b.split)}; "
        "only the queries both share are compared."
    )

measures = [m for m in pq_a.measures if m in pq_b.measures] or sorted(next(iter(pq_a.variants[variant_a].values()), {}))
if st.session_state.get(keys.CMP_METRIC) not in measures:
    st.session_state[keys.CMP_METRIC] = "nDCG@10" if "nDCG@10" in measures else measures[0]
c1, c2, c3 = st.columns(3)
metric = c1.selectbox("Metric", measures, key=keys.CMP_METRIC)
threshold = c2.number_input(
    "Count a change above",
    min_value=0.0,
    max_value=1.0,
    value=0.0,
    step=0.01,
    format="%.3f",
    key=keys.CMP_THRESHOLD,
    help="A query is helped if B − A exceeds this, hurt if A − B does; smaller changes count as unchanged.",
)
top_n = c3.number_input("Rows per list", min_value=5, max_value=500, value=20, step=5, key=keys.CMP_TOP_N)

deltas = per_query_deltas(pq_a.variants[variant_a], pq_b.variants[variant_b], metric)
if deltas.frame.empty:
    st.warning("The two runs share no evaluated query.")
    st.stop()
summary = summarize_changes(deltas, threshold)
m = st.columns(5)
m[0].metric("Queries helped", f"{summary.helped:,}", help=f"{metric} rose by more than {threshold:g}.")
m[1].metric("Queries hurt", f"{summary.hurt:,}", help=f"{metric} fell by more than {threshold:g}.")
m[2].metric("Unchanged", f"{summary.unchanged:,}")
m[3].metric(f"Mean {metric}", f"{summary.mean_b:.4f}", delta=f"{summary.mean_delta:+.4f}")
m[4].metric(
    "Paired t-test p",
    f"{summary.t_test_p:.3g}" if summary.t_test_p == summary.t_test_p else "—",
    help=(
        "Paired t-test on the per-query differences; "
        f"the sign test on helped vs hurt gives p = {summary.sign_test_p:.3g}."
    ),
)
if deltas.only_a or deltas.only_b:
    st.caption(f"Left out: {len(deltas.only_a)} queries only run A scored, {len(deltas.only_b)} only run B scored.")

texts = res.query_texts(pq_a.dataset or info.loc[run_a, "dataset"], pq_a.split or info.loc[run_a, "eval split"])
frame = deltas.frame.assign(change=classify_changes(deltas.frame["delta"], threshold))
frame.insert(1, "query", [short(texts.get(q, ""), 90) for q in frame["query_id"]])

# Scatter A vs B: above the diagonal B did better.
fig = go.Figure()
fig.add_trace(
    go.Scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, showlegend=False, hoverinfo="skip"
    )
)
for change, g in frame.groupby("change", sort=False):
    hover = [html.escape(f"{q}: {short(texts.get(q, ''), 80)}") for q in g["query_id"]]
    fig.add_trace(
        go.Scatter(
            x=g["A"],
            y=g["B"],
            mode="markers",
            name=f"{change} ({len(g)})",
            marker={"color": CHANGE_COLOURS[change], "size": 7, "opacity": 0.7},
            text=hover,
            hovertemplate="%{text}<br>A %{x:.3f} → B %{y:.3f}<extra></extra>",
        )
    )
fig.update_layout(
    xaxis_title=f"{metric}, run A",
    yaxis_title=f"{metric}, run B",
    height=420,
    margin={"t": 30, "b": 40},
    xaxis={"range": [-0.02, 1.02]},
    yaxis={"range": [-0.02, 1.02], "scaleanchor": "x"},
)
left, right = st.columns(2)
with left:
    chart(fig, f"per-query-{metric}-{run_a}-vs-{run_b}", key=keys.CMP_SCATTER)
# Every query's difference, sorted: the share of the area above zero is what B gained.
order = frame.sort_values("delta", ascending=False, kind="stable")
fig = go.Figure(
    go.Bar(
        x=np.arange(1, len(order) + 1),
        y=order["delta"],
        marker_color=[CHANGE_COLOURS[c] for c in order["change"]],
        text=[html.escape(f"{q}: {short(texts.get(q, ''), 80)}") for q in order["query_id"]],
        textposition="none",
        hovertemplate="%{text}<br>B − A = %{y:+.3f}<extra></extra>",
    )
)
fig.update_layout(
    xaxis_title="queries, sorted by B − A",
    yaxis_title=f"B − A ({metric})",
    height=420,
    margin={"t": 30, "b": 40},
    bargap=0,
)
with right:
    chart(fig, f"per-query-delta-{metric}-{run_a}-vs-{run_b}", key=keys.CMP_DELTAS)

# Numbers before the (long) query text, so they stay in view.
cols = ["query_id", "B − A", "A", "B", "query"]
listed = frame.rename(columns={"delta": "B − A"})
helped = listed[listed["change"] == "helped"].sort_values("B − A", ascending=False, kind="stable")
hurt = listed[listed["change"] == "hurt"].sort_values("B − A", ascending=True, kind="stable")
lh, lr = st.columns(2)
with lh:
    st.markdown(f"**Helped by B** ({len(helped)})")
    st.dataframe(helped[cols].head(int(top_n)), hide_index=True, key=keys.CMP_HELPED)
    csv_button(helped[cols], f"helped-{metric}-{run_a}-vs-{run_b}", key=keys.CMP_HELPED_CSV)
with lr:
    st.markdown(f"**Hurt by B** ({len(hurt)})")
    st.dataframe(hurt[cols].head(int(top_n)), hide_index=True, key=keys.CMP_HURT)
    csv_button(hurt[cols], f"hurt-{metric}-{run_a}-vs-{run_b}", key=keys.CMP_HURT_CSV)

full = pd.DataFrame(
    {
        "query_id": frame["query_id"],
        "query": [texts.get(q, "") for q in frame["query_id"]],
        f"{metric} A": frame["A"],
        f"{metric} B": frame["B"],
        "B − A": frame["delta"],
        "change": frame["change"],
    }
)
csv_button(full, f"per-query-{metric}-{run_a}-vs-{run_b}", label="Download every query (CSV)", key=keys.CMP_ALL_CSV)
st.caption(
    f"A = {md_code(run_a)} ({VARIANT_LABELS.get(variant_a, variant_a)}), "
    f"B = {md_code(run_b)} ({VARIANT_LABELS.get(variant_b, variant_b)}), "
    f"on {md_code(pq_a.dataset)} / {md_code(pq_a.split)}. "
    "Query texts in the tables are shortened; the CSV has them in full."
)
