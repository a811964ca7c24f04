"""Overview: the run's metrics, labeling progress, calibration against the judgments, top suspects, datasets, runs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from pages.common import keys
from pages.common import resources as res
from pages.common.calibration_view import calibration_section
from pages.common.exports_view import export_section
from pages.common.jobs_view import demo_offer
from pages.common.run_headline import run_headline
from pages.common.state import DEFAULT_THRESHOLD, selection
from pages.common.widgets import short
from rrra_core.analysis.candidates import top_suspects

st.title("RRRA Studio")
st.caption("Find and fix false negatives in dense-retriever training data.")

sel = selection()
runs = res.all_runs()

if not runs["browsable"].any():
    demo_offer()
elif sel.ready:
    st.subheader(f"Run `{sel.run_id}`")
    run_headline(sel.run_id)

    preds = res.predictions(sel.run_id)
    name = res.store_name(sel.dataset)
    with res.session() as s:
        judged = db.list_judgments(s, name)
        counts = db.annotator_counts(s, name)
        try:
            agree = db.agreement(s, name)
        except db.AnnotationError:
            agree = None
    labelled = (
        {
            (q, d)
            for q, docs in res.dataset(sel.dataset, sel.split or "train").qrels.items()
            for d, r in docs.items()
            if r > 0
        }
        if sel.split
        else set()
    )
    confirmed_fn = {
        (j.query_id, j.doc_id) for j in judged if j.label == "relevant" and (j.query_id, j.doc_id) not in labelled
    }

    st.subheader("Labeling progress")
    c = st.columns(4)
    c[0].metric("Judged pairs", f"{len({(j.query_id, j.doc_id) for j in judged}):,}")
    c[1].metric(
        "False negatives confirmed",
        f"{len(confirmed_fn):,}",
        help="Pairs judged relevant that the qrels call negative.",
    )
    c[2].metric("Annotators", len(counts))
    if agree is not None and agree.value is not None:
        c[3].metric(
            "Agreement",
            f"{agree.value:.2f}",
            help=f"{agree.method.replace('_', ' ')} over {agree.n_items} pairs judged by two or more people",
        )
    else:
        c[3].metric("Agreement", "—", help="Needs at least two annotators judging the same pairs.")
    if counts:
        st.dataframe(pd.DataFrame([{"annotator": a, **v} for a, v in counts.items()]), hide_index=True)
    export_section(sel)

    calibration_section(preds, judged, sel.run_id)

    threshold = float(st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD))
    mine = {(j.query_id, j.doc_id) for j in judged if j.annotator == sel.annotator}
    top = top_suspects(preds, 15, threshold=0.0, exclude=mine)
    n_suspected = int(((preds["label"] == 0) & (preds["p_fn_given_neg"] >= threshold)).sum())
    st.subheader("Top suspected false negatives")
    st.caption(
        f"{n_suspected:,} labelled negatives have P(FN|neg) ≥ {threshold:.2f}. "
        "The most likely ones you have not judged yet; select a row to open its query."
    )
    # The suspects are the run's own candidates, so their query texts are in the split the run scored,
    # whichever split the sidebar shows now.
    run_split = next(iter(runs.loc[runs["run"] == sel.run_id, "split"].dropna()), None)
    if run_split not in res.splits(sel.dataset):
        run_split = sel.split or "train"
    data = res.dataset(sel.dataset, run_split)
    table = pd.DataFrame(
        {
            "query": [short(data.queries.get(q, ""), 70) for q in top["query_id"]],
            "document": [short(getattr(data.corpus.get(d), "text", ""), 90) for d in top["doc_id"]],
            "P(FN|neg)": top["p_fn_given_neg"].round(3),
            "rank": top["rank"] + 1,
            "query id": top["query_id"],
            "doc id": top["doc_id"],
        }
    )
    picked = st.dataframe(
        table,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=keys.TOP_SUSPECTS,
        column_config={"P(FN|neg)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")},
    )
    rows = picked.selection.rows if picked is not None else []
    if rows:
        st.session_state[keys.QUERY] = str(top["query_id"].iloc[rows[0]])
        st.switch_page("pages/label/browser.py")
    st.page_link(
        "pages/label/review.py", label="Start reviewing suspected false negatives", icon=":material/fact_check:"
    )
else:
    st.info("Choose a dataset with a scored run in the sidebar, or build one with `scripts/train_adapter.py`.")


def _cell(value: object) -> str:
    # Datasets differ in their splits: a split a dataset lacks is an empty cell, not "None"; counts stay whole.
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    return str(value)


st.subheader("Datasets")
st.dataframe(pd.DataFrame([res.dataset_stats(n) for n in res.DATASETS]).map(_cell), hide_index=True)

st.subheader("Runs")
if len(runs):
    st.dataframe(
        runs.drop(columns=["modified"]),
        hide_index=True,
        column_config={"browsable": st.column_config.CheckboxColumn("scored candidates")},
    )
else:
    st.caption("No runs yet.")
