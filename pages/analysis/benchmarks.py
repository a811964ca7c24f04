"""Ablations & baselines: a benchmark result file as tables and charts, each downloadable.

Every number comes from a ``results/*.json`` file written by
``scripts/benchmark.py`` (or ``scripts/detection_curves.py``), and the command
that wrote it is shown first, so the page always shows what that command
produced. ``$RRRA_RESULTS`` points the page at another results folder.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from pages.common import keys
from pages.common.downloads import chart, csv_button
from pages.common.fair_view import fair_section
from pages.common.hitl_view import hitl_section
from pages.common.widgets import md_code, md_escape
from rrra_core.analysis.results_view import (
    RESULTS_ENV,
    ablation_table,
    curve_points,
    curves_source,
    detection_table,
    header,
    hitl_points,
    list_result_files,
    load_result,
    method_table,
    results_dir,
    wide_table,
)
from rrra_core.runtime.errors import DataError

DEFAULT_FILE = "rrra_cranfield.json"
GROUP_COLOURS = {"baseline": "#90a4ae", "RRRA": "#d84315", "ablation": "#6a1b9a", "other": "#455a64"}

st.title("Ablations & baselines")
st.caption(
    "The benchmark's tables and figures, read from its result files. "
    "Every chart's camera button saves an SVG; every table downloads as CSV."
)

folder = results_dir()
files = list_result_files(folder)
if not files:
    st.info(
        f"No benchmark result files in {md_code(folder)}. "
        "Run `python scripts/benchmark.py --preset quick` (a few minutes) to make one, "
        f"or set {md_code(RESULTS_ENV)} to a folder that has them."
    )
    st.stop()

names = [str(p.relative_to(folder)) for p in files]
if st.session_state.get(keys.BENCH_FILE) not in names:
    st.session_state[keys.BENCH_FILE] = DEFAULT_FILE if DEFAULT_FILE in names else names[0]
choice = st.selectbox(
    "Result file", names, key=keys.BENCH_FILE, help=f"Files in {md_code(folder)}; sub-folders hold per-seed parts."
)
path = folder / choice
stem = path.stem
try:
    result = load_result(path)
except DataError as err:
    # Names inside a file (methods, scores) are data: escaped, never Markdown.
    st.error(md_escape(str(err)))
    st.stop()

head = header(result)
st.markdown("**Command that wrote this file**")
st.code(head["command"], language="bash", wrap_lines=True)
if head["source_command"]:
    st.markdown("**It recomputed detection from the runs of**")
    st.code(head["source_command"], language="bash", wrap_lines=True)
    if head["matches_source"] is not None:
        (st.success if head["matches_source"] else st.error)(
            "Recomputed AUROC, AP, P@50 and P@100 match the source file."
            if head["matches_source"]
            else "Recomputed detection does NOT match the source file: see its .md."
        )
wall = f"{head['wall_seconds'] / 60:.1f} min" if isinstance(head["wall_seconds"], (int, float)) else "not recorded"
st.caption(
    md_escape(
        f"Machine: {head['machine']}. Wall time: {wall}. Seeds: {', '.join(map(str, head['seeds']))}. "
        f"Dataset: {head['dataset']}."
    )
)

tab_methods, tab_ablations, tab_detection, tab_hitl, tab_fair = st.tabs(
    ["Methods", "Ablations", "False-negative detection", "Human in the loop", "Fair comparison"]
)

# --- methods ------------------------------------------------------------------
with tab_methods:
    methods = method_table(result)
    if methods.empty:
        st.info(
            "This file has no retrieval results (a detection-only recomputation); pick its source file for the methods."
        )
    else:
        table = wide_table(methods, "method")
        st.markdown("**Test retrieval, mean and std over seeds**")
        st.dataframe(
            table,
            hide_index=True,
            key=keys.BENCH_METHODS_TABLE,
            column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns if c != "method"},
        )
        csv_button(table, f"{stem}_methods", key=keys.BENCH_METHODS_CSV)
        metrics = list(dict.fromkeys(methods["metric"]))
        metric = st.selectbox(
            "Metric",
            metrics,
            index=metrics.index("nDCG@10") if "nDCG@10" in metrics else 0,
            key=keys.for_file(keys.BENCH_METRIC, stem),
        )
        shown = methods[(methods["metric"] == metric) & (methods["group"] != "ablation")]
        # Bars start at zero (honest lengths); the printed means make small differences readable.
        fig = px.bar(
            shown,
            x="method",
            y="mean",
            error_y="std",
            color="group",
            color_discrete_map=GROUP_COLOURS,
            text_auto=".3f",
            hover_data={"std": ":.4f", "n": True},
            labels={"mean": metric, "method": ""},
        )
        fig.update_layout(
            title=f"{metric} per method (error bars: std over {max(shown['n'], default=0)} seeds)",
            xaxis_tickangle=-30,
            legend_title_text="",
        )
        chart(fig, f"{stem}_methods_{metric}", key=keys.BENCH_METHODS_CHART)

# --- ablations ----------------------------------------------------------------
with tab_ablations:
    ablations = ablation_table(result)
    if ablations.empty:
        st.info("This file has no adapter ablations (it ran with the full adapter only).")
    else:
        table = wide_table(ablations.rename(columns={"measure": "metric"}), "variant")
        st.markdown("**Each adapter variant changes one design decision; `full` is the unablated adapter**")
        st.dataframe(
            table,
            hide_index=True,
            key=keys.BENCH_ABLATION_TABLE,
            column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns if c != "variant"},
        )
        csv_button(table, f"{stem}_ablations", key=keys.BENCH_ABLATION_CSV)
        measures = list(dict.fromkeys(ablations["measure"]))
        measure = st.selectbox(
            "Measure",
            measures,
            index=measures.index("detection AUROC") if "detection AUROC" in measures else 0,
            key=keys.for_file(keys.BENCH_MEASURE, stem),
            help=(
                "detection: finding planted false negatives among mined negatives; "
                "F1: four-class on held-out queries; "
                "(rerank): test retrieval of the phase-1 encoder reranked by that adapter."
            ),
        )
        shown = ablations[ablations["measure"] == measure]
        fig = px.bar(
            shown,
            x="variant",
            y="mean",
            error_y="std",
            labels={"mean": measure, "variant": ""},
            hover_data={"std": ":.4f", "n": True},
            text_auto=".3f",
            color=shown["variant"].eq("full").map({True: "full adapter", False: "ablation"}),
            color_discrete_map={"full adapter": GROUP_COLOURS["RRRA"], "ablation": GROUP_COLOURS["ablation"]},
        )
        fig.update_layout(title=f"{measure} per adapter variant (error bars: std over seeds)", legend_title_text="")
        chart(fig, f"{stem}_ablations_{measure}", key=keys.BENCH_ABLATION_CHART)

# --- detection ----------------------------------------------------------------
with tab_detection:
    detection = detection_table(result)
    if detection.empty:
        st.info("This file has no false-negative detection (nothing was hidden and no truth was given).")
    else:
        table = wide_table(detection[detection["metric"].isin(("AUROC", "AP", "P@50", "P@100"))], "score")
        st.markdown(
            "**Finding the hidden positives among the phase-1 encoder's mined negatives, mean and std over seeds**"
        )
        st.dataframe(
            table,
            hide_index=True,
            key=keys.BENCH_DETECTION_TABLE,
            column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns if c != "score"},
        )
        csv_button(table, f"{stem}_detection", key=keys.BENCH_DETECTION_CSV)

    src = curves_source(path, result)
    points = pd.DataFrame()
    if src is None:
        if not detection.empty:
            st.info(
                "No curve points for this file: it predates them. "
                "`python scripts/detection_curves.py <this file> --out <stem>_detection_curves` "
                "recomputes them from its run folders."
            )
    else:
        try:
            source = result if src == path else load_result(src)
            points = curve_points(source)
        except DataError as err:
            st.warning(md_escape(str(err)))
        if src != path:
            st.caption(md_escape(f"Curves from {src.name}, recomputed from this benchmark's run folders."))
    if not points.empty:
        seeds = list(dict.fromkeys(points["seed"]))
        c1, c2 = st.columns([1, 3])
        seed = c1.selectbox("Seed", seeds, key=keys.for_file(keys.BENCH_SEED, src.stem))
        scores = list(dict.fromkeys(points["score"]))
        default = [s for s in scores if not s.startswith("adapter") or s.endswith("(full)")] or scores
        picked = c2.multiselect("Scores", scores, default=default, key=keys.for_file(keys.BENCH_SCORES, src.stem))
        one = points[(points["seed"] == seed) & points["score"].isin(picked)]
        left, right = st.columns(2)
        with left:
            pr = px.line(
                one[one["curve"] == "PR"],
                x="x",
                y="y",
                color="score",
                labels={"x": "recall", "y": "precision", "score": ""},
            )
            prevalence = float(one["prevalence"].iloc[0]) if len(one) else float("nan")
            pr.add_hline(
                y=prevalence, line_dash="dash", line_color="grey", annotation_text=f"random ({prevalence:.3f})"
            )
            pr.update_layout(title=f"Precision-recall, seed {seed}", yaxis_range=[0, 1.02], xaxis_range=[0, 1])
            chart(pr, f"{stem}_pr_seed{seed}", key=keys.BENCH_PR_CHART)
        with right:
            roc = px.line(
                one[one["curve"] == "ROC"],
                x="x",
                y="y",
                color="score",
                labels={"x": "false positive rate", "y": "true positive rate", "score": ""},
            )
            roc.add_trace(
                go.Scatter(
                    x=[0, 1],
                    y=[0, 1],
                    mode="lines",
                    line={"dash": "dash", "color": "grey"},
                    name="random",
                    showlegend=True,
                )
            )
            roc.update_layout(title=f"ROC, seed {seed}", yaxis_range=[0, 1.02], xaxis_range=[0, 1])
            chart(roc, f"{stem}_roc_seed{seed}", key=keys.BENCH_ROC_CHART)
        csv_button(
            points.rename(columns={"x": "x (recall or FPR)", "y": "y (precision or TPR)"}),
            f"{stem}_detection_curves",
            label="Download curve points (CSV, every seed and score)",
            key=keys.BENCH_CURVES_CSV,
        )

# --- human in the loop --------------------------------------------------------
with tab_hitl:
    drew_curve = hitl_section(folder)
    hitl = hitl_points(result)
    if hitl.empty and drew_curve:
        st.caption("The benchmark file above has no per-seed human-in-the-loop rows of its own.")
    elif hitl.empty:
        st.info(
            "This file has no human-in-the-loop curve "
            "(the benchmark ran with `--hitl ''`, or only its first seed has one)."
        )
    else:
        st.markdown(
            "**A simulated reviewer labels the top N of the adapter's review queue correctly; "
            "the labels are merged and RRRA retrains**"
        )
        st.dataframe(hitl, hide_index=True, key=keys.BENCH_HITL_TABLE)
        csv_button(hitl, f"{stem}_hitl", key=keys.BENCH_HITL_CSV)
        options = [c for c in hitl.columns if c not in ("seed", "N", "found")]
        metric = st.selectbox(
            "Metric",
            options,
            index=options.index("nDCG@10") if "nDCG@10" in options else 0,
            key=keys.for_file(keys.BENCH_HITL_METRIC, stem),
        )
        fig = px.line(
            hitl,
            x="N",
            y=metric,
            color=hitl["seed"].map(lambda s: f"seed {s}"),
            markers=True,
            text="found",
            labels={"N": "items reviewed (N)", "color": ""},
            hover_data={"found": True},
        )
        fig.update_traces(textposition="top center", texttemplate="%{text} FN")
        fig.update_layout(title=f"{metric} after retraining vs. items reviewed (labels: false negatives found)")
        chart(fig, f"{stem}_hitl_{metric}", key=keys.BENCH_HITL_CHART)
        if hitl["seed"].nunique() == 1:
            st.caption("One seed, no error bars: read no slope from a few points.")

# --- the fair, tuned comparison ---------------------------------------------------
with tab_fair:
    if not fair_section(folder):
        st.info(
            "No fair-comparison file yet: `python scripts/benchmark.py --preset fair-cranfield` tunes every method "
            "equally on a dev split and writes `results/fair_cranfield.json`."
        )
