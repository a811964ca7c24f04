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
from pages.common.labels_count import judged_false_negatives
from pages.common.run_headline import run_headline, short_name
from pages.common.state import DEFAULT_THRESHOLD, selection
from pages.common.widgets import md_escape, short
from rrra_core.runtime.errors import UserError


def suspects_note(run_id: str, threshold: float) -> str | None:
    """Why a retrained run's suspect count differs from its base run's (``None`` for a run no retrain made).

    The count moves for three reasons, and the note measures each: the pool (a joint retrain re-mines the
    candidates with its fine-tuned encoder), the adapter that scores them (retrained, or trained jointly in
    phase 3 with another loss, so its P(FN|neg) is on another scale) and the labels (pairs people found
    relevant are labelled positive in the new run, so they are no longer negatives). Every figure comes from
    the two runs' stores (counts by binary search, the shared pairs joined once per process), never a frame.
    """
    config = res.run_json(run_id, "config.json", {}) or {}
    record = config.get("retrain")
    if not isinstance(record, dict) or not record.get("base_run"):
        return None
    base_id = str(record["base_run"])
    try:
        base = res.run_store(base_id)
        shared = res.run_pool_overlap(run_id, base_id)
    except (UserError, OSError):  # the base run was deleted, or never scored its candidates
        return None
    store = res.run_store(run_id)
    n_base, n_run = base.count_suspects(threshold), store.count_suspects(threshold)
    was, now = shared.suspects_by_base(threshold), shared.suspects_by_run(threshold)
    text = (
        f"Its base run {base_id} has {n_base:,} at this threshold, this run {n_run:,}. "
        f"{shared.n_shared:,} of this run's {store.n_rows:,} candidates are in the base's pool too; "
        f"of those, {was:,} are suspects by the base's scores and {now:,} by this run's. "
    )
    if config.get("kind") == "phase3":
        mu = (config.get("phase") or {}).get("mu")
        text += (
            "This run's candidates were re-mined by its fine-tuned encoder and scored by the adapter that phase 3 "
            "trained jointly with it"
            + (
                f" (its loss presents each positive pair as a false negative with probability {mu} and every "
                "sampled negative as a true negative)"
                if mu is not None
                else ""
            )
            + ", not by the base's adapter: its P(FN|neg) is on another scale, so a threshold chosen on the base "
            "run does not carry over."
        )
    else:
        text += "This run's candidates were scored by the adapter retrained on the corrected labels, not by the base's."
    added = (record.get("changes") or {}).get("false_negatives_added") or 0
    if added:
        text += f" {added:,} pairs people found relevant are labelled positive here, so they are no longer suspects."
    return text + " The calibration above measures this run's scale against the verdicts."


st.title("RRRA Studio")
st.caption("Find and fix false negatives in dense-retriever training data.")

sel = selection()
runs = res.all_runs()

if not runs["browsable"].any():
    demo_offer()
elif sel.ready:
    st.subheader(f"Run `{sel.run_id}`")
    run_headline(sel.run_id)

    # The run's candidates laid out by query: this page reads counts and the top suspects, never every row.
    store = res.run_store(sel.run_id)
    name = res.store_name(sel.dataset)
    with res.session() as s:
        # Aggregates, not every judgment: the page costs the same at a million judgments (results/store_scale.md).
        progress = db.overview_counts(s, name, sel.annotator)
    counts, agree, decided = progress.annotators, progress.agreement, progress.decided
    # One definition for this count and the calibration's: the run's labelled negatives the verdicts call relevant.
    verdicts = judged_false_negatives(store.negatives_at(decided), decided)

    st.subheader("Labeling progress")
    c = st.columns(4)
    c[0].metric("Judged pairs", f"{progress.judged_pairs:,}")
    c[1].metric(
        "False negatives confirmed",
        f"{int(verdicts['verdict'].sum()):,}",
        help="This run's labelled negatives that the verdicts call relevant: more relevant than not-relevant votes "
        "(unsure abstains, a tie decides nothing), an adjudication overruling them. The same count as the "
        "calibration's 'Judged false negatives'.",
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

    calibration_section(verdicts, sel.run_id)

    threshold = float(st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD))
    mine = progress.mine
    top = store.top_suspects(15, threshold=0.0, exclude=mine)
    n_suspected = store.count_suspects(threshold)
    st.subheader("Top suspected false negatives")
    st.caption(
        f"{n_suspected:,} labelled negatives have P(FN|neg) ≥ {threshold:.2f}. "
        "The most likely ones you have not judged yet; select a row to open its query."
    )
    if (note := suspects_note(sel.run_id, threshold)) is not None:
        st.caption(md_escape(note))
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

#: The runs table's metric columns: a number where the run has it, "—" where its kind has none.
RUN_METRICS = ("nDCG@10", "R@100", "adapter macro-F1")


def _metric_cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) and value == value else "—"


def runs_view(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as people read it: datasets by name (not a folder's full path), "—" for a missing metric."""
    view = runs.drop(columns=["modified"])
    view["dataset"] = view["dataset"].map(lambda d: short_name(d) if isinstance(d, str) else "—")
    for name in RUN_METRICS:
        if name in view.columns:
            view[name] = view[name].map(_metric_cell)
    return view


st.subheader("Runs")
if len(runs):
    st.dataframe(
        runs_view(runs),
        hide_index=True,
        column_config={"browsable": st.column_config.CheckboxColumn("scored candidates")},
    )
else:
    st.caption("No runs yet.")
