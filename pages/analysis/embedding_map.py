"""Embedding map: a UMAP of a query's neighbourhood (q, candidates c, corrections a) or of a global sample.

Arrows run from each candidate ``c`` to the adapter's corrected position
``a``: a suspected false negative is pulled toward the query. Colour by the
adapter's verdict, P(FN|neg), human labels or planted false negatives; hover
for the text and the conditional that matches the pair's label (P(FP|pos) for
a labelled positive, P(FN|neg) for a negative, as in the browser); click a
point (or drag a box or lasso from the toolbar) to list and relabel it. The
global view draws a few query stars unless asked for all. Maps are computed
by ``scripts/project.py`` in the background, once per run and scope (a
query's job lays out the run's global map too), and read from the run folder
afterwards; switching back to a run reads its saved maps.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

import db
from pages.common import keys, labeling
from pages.common import projection_view as pv
from pages.common import resources as res
from pages.common.downloads import chart, csv_button
from pages.common.labeling import LABEL_BUTTONS
from pages.common.model_view import conditional, conditional_text
from pages.common.state import Selection, require_run
from pages.common.widgets import doc_text, label_badge, md_code, md_escape, short, show_text
from rrra_core.analysis.projection import Scope

SCOPE_QUERY = "A query's neighbourhood"
SCOPE_GLOBAL = "Global sample"
MAX_LISTED = 30

st.title("Embedding map")
labeling.show_flash()
sel = require_run()

run = res.get_run(sel.run_id)
run_split = res.run_dataset(res.run_json(sel.run_id, "config.json", {}) or {})[1]
split = run_split if run_split in res.splits(sel.dataset) else sel.split
data = res.dataset(sel.dataset, split)
# The query ids the run scored, from its store: the map's points come from the saved projection, not the run's rows.
scored = res.run_store(sel.run_id).scored_queries()
known = res.known_fn(sel.dataset, split)
if not scored:
    st.warning(f"Run {sel.run_id} scored no candidates: there is nothing to map.")
    st.stop()


# --- what to map ----------------------------------------------------------------------


def _set_query() -> None:
    st.session_state[keys.QUERY] = st.session_state[keys.MAP_QUERY_PICKER]


with st.container(horizontal=True, vertical_alignment="bottom"):
    scope_choice = st.radio("Map", (SCOPE_QUERY, SCOPE_GLOBAL), key=keys.MAP_SCOPE, horizontal=True, width=360)
    if scope_choice == SCOPE_QUERY:
        # Follow the query the other pages have open, so the map and the browser agree.
        if st.session_state.get(keys.QUERY) not in scored:
            st.session_state[keys.QUERY] = scored[0]
        st.session_state[keys.MAP_QUERY_PICKER] = st.session_state[keys.QUERY]
        st.selectbox(
            f"Query ({len(scored):,} scored)",
            scored,
            key=keys.MAP_QUERY_PICKER,
            on_change=_set_query,
            format_func=lambda q: f"{q} · {short(data.all_queries.get(q, ''), 90)}",
            width=520,
        )
    colours = [pv.COLOUR_CLASS, pv.COLOUR_PFN, pv.COLOUR_HUMAN] + ([pv.COLOUR_PLANTED] if known else [])
    if st.session_state.get(keys.MAP_COLOUR) not in colours:
        st.session_state.pop(keys.MAP_COLOUR, None)
    colour_by = st.selectbox(
        "Colour by",
        colours,
        key=keys.MAP_COLOUR,
        width=220,
        help="Predicted class: the adapter's TP/FN/FP/TN verdict given the label. P(FN|neg): for labelled negatives. "
        "Human label: the annotators' judgment (purple where they disagree). Planted false negatives "
        "appear when the dataset ships them (SQuAD's answer-bearing paragraphs).",
    )
    arrows = st.toggle(
        "Arrows c → a",
        value=True,
        key=keys.MAP_ARROWS,
        disabled=scope_choice != SCOPE_QUERY,
        help="From each candidate's embedding c to the adapter's corrected position a.",
    )

scope = Scope(st.session_state[keys.QUERY]) if scope_choice == SCOPE_QUERY else Scope()
if not scope.is_global:
    st.markdown(f"**Query** {md_code(scope.query_id)}")
    show_text(data.all_queries.get(scope.query_id, "(query text missing)"))

proj, current = res.projection(run, scope)
if proj is None or not current:
    pv.compute_or_follow(run, scope, stale=proj is not None)
    if proj is None:
        st.stop()

points = proj.points
if scope.is_global:
    all_stars = st.toggle(
        "Show every sampled query's star",
        value=False,
        key=keys.MAP_ALL_STARS,
        help=f"Off: {pv.GLOBAL_STARS} query stars spread over the sample, so the documents stay visible.",
    )
    if not all_stars:
        points = pv.thin_stars(points)


# --- the chart ----------------------------------------------------------------------------


def _human_labels(s: Selection) -> dict[tuple[str, str], dict[str, str]]:
    with res.session() as session:
        rows = db.list_judgments(session, res.store_name(s.dataset))
    out: dict[tuple[str, str], dict[str, str]] = {}
    for j in rows:
        out.setdefault((j.query_id, j.doc_id), {})[j.annotator] = j.label
    return out


human = _human_labels(sel)
values = pv.colour_values(points, colour_by, human=human, known=known)
hover = pv.hover_texts(points, data.all_queries, data.corpus)
fig = pv.build_figure(points, values, hover, arrows=bool(arrows) and not scope.is_global)
event = chart(
    fig, f"embedding-map-{scope.key}", key=keys.MAP_CHART, on_select="rerun", selection_mode=("points", "box", "lasso")
)

cfg = proj.config
if scope.is_global:
    n_sampled = int((proj.points["kind"] == "query").sum())
    st.caption(
        f"{(points['kind'] == 'query').sum()} of {n_sampled} sampled queries (★) and "
        f"{(points['kind'] == 'doc').sum()} documents (●); "
        "a document stands for its labelled-positive pair, else its most suspect one. "
        f"{proj.meta.get('method', 'umap').upper()}, n_neighbors {cfg.n_neighbors}, seed {cfg.seed}; "
        f"computed in {proj.meta.get('seconds', 0):.0f} s."
    )
else:
    st.caption(
        "★ query · ● candidate c · ◆ corrected a · ■ labelled positive the retriever missed; "
        "a thick outline marks labelled positives. "
        f"Top {cfg.top_k} candidates. {proj.meta.get('method', 'umap').upper()}, "
        f"n_neighbors {cfg.n_neighbors}, seed {cfg.seed}; "
        f"computed in {proj.meta.get('seconds', 0):.0f} s. "
        "UMAP keeps neighbourhoods, not distances: read arrows as directions."
    )


# --- selected points ------------------------------------------------------------------------

pairs = pv.pair_table(points)
row_keys = pv.row_pair_keys(points)
chosen_rows = pv.selected_rows(fig, (event or {}).get("selection", {}).get("points", []))
chosen = list(dict.fromkeys(row_keys[i] for i in chosen_rows if 0 <= i < len(row_keys) and row_keys[i] is not None))
if chosen and chosen != st.session_state.get(keys.MAP_LAST_EVENT):
    # A new chart selection replaces the list; the list can then be edited by hand.
    st.session_state[keys.MAP_LAST_EVENT] = chosen
    st.session_state[keys.MAP_PICKED] = chosen
st.session_state[keys.MAP_PICKED] = [k for k in st.session_state.get(keys.MAP_PICKED, []) if k in pairs.index]


def _describe_pair(key: str) -> str:
    row = pairs.loc[key]
    rank = "" if pd.isna(row["rank"]) else f" · #{int(row['rank']) + 1}"
    given = "" if pd.isna(row["p_tp"]) else f" · {conditional_text(row, '.2f')}"
    return f"{row['doc_id']} · query {row['query_id']}{rank}{given}"


picked = st.multiselect(
    "Selected points (click a point, or drag a box or lasso from the map's toolbar, or pick here)",
    list(pairs.index),
    key=keys.MAP_PICKED,
    format_func=lambda k: short(_describe_pair(k), 120),
    placeholder="No point selected",
)


def _label(row: dict[str, Any], label: str, s: Selection = sel) -> None:
    labeling.save(s, row, label)


if picked:
    listed = pairs.loc[picked[:MAX_LISTED]]
    if len(picked) > MAX_LISTED:
        st.caption(f"Showing the first {MAX_LISTED} of {len(picked)} selected pairs.")
    given = [conditional(r) for r in listed.to_dict("records")]
    table = pd.DataFrame(
        {
            "query id": listed["query_id"],
            "doc id": listed["doc_id"],
            "rank": listed["rank"] + 1,
            "labelled": listed["label"].map({1: "positive", 0: "negative"}).fillna("—"),
            "verdict": listed["verdict"],
            # Each pair's conditional matches its label, as in the browser; the other one stays empty.
            "P(FN|neg)": [v if n == "P(FN|neg)" else None for n, v in given],
            "P(FP|pos)": [v if n == "P(FP|pos)" else None for n, v in given],
            "P(rel)": listed["p_rel"],
        }
    ).reset_index(drop=True)
    csv_button(table, f"embedding-map-selection-{scope.key}", key=keys.MAP_CSV)
    for i, (_key, row) in enumerate(listed.iterrows()):
        q, d = row["query_id"], row["doc_id"]
        mine = human.get((q, d), {}).get(sel.annotator)
        others = {a: lab for a, lab in human.get((q, d), {}).items() if a != sel.annotator}
        with st.container(border=True):
            cols = st.columns([3, 2, 4], vertical_alignment="center")
            rank = "not retrieved" if pd.isna(row["rank"]) else f"#{int(row['rank']) + 1}"
            cols[0].markdown(
                f"{md_code(d)} for query {md_code(q)}  \n{rank} · "
                f"{'labelled positive' if row['label'] > 0 else 'labelled negative'}"
            )
            cols[1].markdown(
                f"{md_escape(conditional_text(row))}  \nyou: {label_badge(mine)}"
                + (f"  \nothers: {labeling.who_said(others)}" if others else "")
            )
            with cols[2], st.container(horizontal=True):
                for label, text, _ in LABEL_BUTTONS:
                    st.button(
                        text,
                        key=keys.map_label(label, i),
                        on_click=_label,
                        args=(pv.labeling_row(row.to_dict()), label),
                        type="primary" if mine == label else "secondary",
                    )
            # A fixed label: an expander's label is Markdown (a bare URL there would become a link), so the
            # document's title and text are shown inside it, as plain text only.
            with st.expander("Document text"):
                show_text(doc_text(data.corpus.get(d)))
