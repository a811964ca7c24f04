"""Hard-negative browser: one query's top-K candidates with the adapter's TP/FN/FP/TN probabilities.

Pick a query by id or words; read its labelled positives; page through its
candidates (rank, retriever score, the four probabilities, P(FN|neg), the
rerank position, human labels) and relabel them with a click or the keyboard:
J/K move the focus, 1/2/3 label the focused candidate, Z undoes, N/P change query.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages.common import keys, labeling
from pages.common import resources as res
from pages.common.bulk_label import bulk_label
from pages.common.labeling import LABEL_BUTTONS, UNDO_SHORTCUT
from pages.common.state import DEFAULT_THRESHOLD, Selection, require_run
from pages.common.widgets import doc_text, label_badge, legend, md_code, md_escape, prob_bar, short, show_text
from rrra_core.analysis.candidates import candidates_for, predicted_class, search_queries

PAGE_SIZES = (10, 20, 50)

st.title("Hard negatives")
labeling.show_flash()
sel = require_run()

preds = res.predictions(sel.run_id)
data = res.dataset(sel.dataset, sel.split)
scored = set(preds["query_id"].unique())
pool = [q for q in data.qrels if q in scored]
if not pool:
    run_split = res.run_dataset(res.run_json(sel.run_id, "config.json", {}))[1]
    st.warning(
        f"Run {sel.run_id} scored the '{run_split}' split's queries; none are in the '{sel.split}' split. "
        "Switch the split in the sidebar."
    )
    st.stop()


# --- query picker -------------------------------------------------------------


def _set_query(qid: str) -> None:
    st.session_state[keys.QUERY] = qid
    st.session_state[keys.BROWSER_FOCUS] = 0
    st.session_state[keys.BROWSER_PAGE] = 0


def _step_query(options: list[str], step: int) -> None:
    cur = st.session_state.get(keys.QUERY)
    i = options.index(cur) if cur in options else 0
    _set_query(options[(i + step) % len(options)])


search = st.text_input("Find a query", key=keys.BROWSER_SEARCH, placeholder="words from the query, or its id")
matches = search_queries(data.queries, search, within=pool, limit=500)
if not matches:
    st.warning("No query matches; showing all.")
    matches = pool[:500]
if st.session_state.get(keys.QUERY) not in pool or (search.strip() and st.session_state[keys.QUERY] not in matches):
    _set_query(matches[0])
current = st.session_state[keys.QUERY]
options = matches if current in matches else [current, *matches]
st.session_state[keys.BROWSER_QUERY_PICKER] = current
cols = st.columns([8, 1, 1], vertical_alignment="bottom")
cols[0].selectbox(
    f"Query ({len(matches):,} of {len(pool):,})",
    options,
    key=keys.BROWSER_QUERY_PICKER,
    format_func=lambda q: f"{q} · {short(data.queries.get(q, ''), 100)}",
    on_change=lambda: _set_query(st.session_state[keys.BROWSER_QUERY_PICKER]),
)
cols[1].button(
    "Prev",
    key=keys.BROWSER_QUERY_PREV,
    shortcut="P",
    on_click=_step_query,
    args=(options, -1),
    width="stretch",
    help="Previous query (P)",
)
cols[2].button(
    "Next",
    key=keys.BROWSER_QUERY_NEXT,
    shortcut="N",
    on_click=_step_query,
    args=(options, 1),
    width="stretch",
    help="Next query (N)",
)
qid = st.session_state[keys.QUERY]

st.markdown(f"**Query** {md_code(qid)}")
show_text(data.queries.get(qid, "(query text missing)"))
positives = [d for d, r in data.qrels.get(qid, {}).items() if r > 0]
with st.expander(f"Labelled positives ({len(positives)})", expanded=len(positives) <= 2):
    for d in positives:
        st.markdown(f"{md_code(d)}")
        show_text(doc_text(data.corpus.get(d)))


# --- candidates ---------------------------------------------------------------

cands = candidates_for(preds, qid)
cands["verdict"] = predicted_class(cands)
human = labeling.labels_for(sel, qid)
known = res.known_fn(sel.dataset, sel.split).get(qid, set())
threshold = st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD)

with st.container(horizontal=True, vertical_alignment="bottom"):
    st.slider(
        "Suspect a false negative at P(FN|neg) ≥",
        0.0,
        1.0,
        float(threshold),
        0.05,
        key=keys.BROWSER_THRESHOLD,
        on_change=lambda: st.session_state.__setitem__(keys.THRESHOLD, st.session_state[keys.BROWSER_THRESHOLD]),
        width=320,
    )
    page_size = st.selectbox("Per page", PAGE_SIZES, key=keys.BROWSER_PAGE_SIZE, width=110)
    legend()

suspect = (cands["label"] == 0) & (cands["p_fn_given_neg"] >= threshold)
table = pd.DataFrame(
    {
        "rank": cands["rank"] + 1,
        "rerank": cands["rerank"] + 1,
        "score": cands["score"].round(4),
        "P(FN|neg)": cands["p_fn_given_neg"],
        "verdict": cands["verdict"],
        "qrels": cands["label"].map({1: "positive", 0: "negative"}),
        "suspected": suspect,
        "your label": [label_badge(human.get(d, {}).get(sel.annotator)) for d in cands["doc_id"]],
        "doc id": cands["doc_id"],
        "preview": [short(getattr(data.corpus.get(d), "text", ""), 80) for d in cands["doc_id"]],
    }
)
if known:
    table.insert(6, "answer-bearing", cands["doc_id"].isin(known))
with st.expander(f"All {len(cands)} candidates as a table (sortable, downloadable)"):
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "P(FN|neg)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f"),
        },
    )

n = len(cands)
pages = max(1, -(-n // page_size))
focus = min(int(st.session_state.get(keys.BROWSER_FOCUS, 0)), n - 1)
page = min(int(st.session_state.get(keys.BROWSER_PAGE, focus // page_size)), pages - 1)


def _move_focus(step: int) -> None:
    f = max(0, min(n - 1, int(st.session_state.get(keys.BROWSER_FOCUS, 0)) + step))
    st.session_state[keys.BROWSER_FOCUS] = f
    st.session_state[keys.BROWSER_PAGE] = f // page_size


def _go_page(p: int) -> None:
    st.session_state[keys.BROWSER_PAGE] = p
    st.session_state[keys.BROWSER_FOCUS] = p * page_size


def _label(row: dict[str, Any], label: str, s: Selection = sel) -> None:
    labeling.save(s, row, label)


def _describe(row: pd.Series, i: int) -> None:
    """One candidate: numbers, bar, flags and label buttons, then its text in an expander."""
    d = row["doc_id"]
    mine = human.get(d, {}).get(sel.annotator)
    others = {a: lab for a, lab in human.get(d, {}).items() if a != sel.annotator}
    c = st.columns([0.9, 2.0, 1.5, 1.1, 1.4, 3.8], vertical_alignment="center")
    c[0].markdown(f"**#{int(row['rank']) + 1}**  \n{row['score']:.4f}")
    with c[1]:
        prob_bar(row)
    flags = []
    if suspect.iloc[i]:
        flags.append(":red-badge[suspected FN]")
    if row["label"] > 0:
        flags.append(":green-badge[labelled positive]")
    if d in known:
        flags.append(":orange-badge[answer-bearing]")
    if row["label"] > 0 and "p_fp_given_pos" in row:
        c[2].markdown(f"P(FP\\|pos) **{row['p_fp_given_pos']:.3f}**  \n" + " ".join(flags))
    else:
        c[2].markdown(f"P(FN\\|neg) **{row['p_fn_given_neg']:.3f}**  \n" + " ".join(flags))
    move = int(row["rank"]) - int(row["rerank"])
    arrow = f":green[▲{move}]" if move > 0 else (f":red[▼{-move}]" if move < 0 else "=")
    c[3].markdown(f"rerank **#{int(row['rerank']) + 1}** {arrow}")
    c[4].markdown(
        f"you: {label_badge(mine)}"
        + (f"  \nothers: {', '.join(label_badge(v) for v in others.values())}" if others else "")
    )
    with c[5]:
        with st.container(horizontal=True):
            for label, text, _ in LABEL_BUTTONS:
                st.button(
                    text,
                    key=keys.browser_label(label, i),
                    on_click=_label,
                    args=(row.to_dict(), label),
                    type="primary" if mine == label else "secondary",
                )
    doc = data.corpus.get(d)
    with st.expander(
        f"{md_code(d)} · {md_escape(getattr(doc, 'title', '') or short(getattr(doc, 'text', ''), 80), 100)}",
        expanded=(i == focus),
    ):
        show_text(doc_text(doc))


# The focused candidate: what the keyboard shortcuts act on.
frow = cands.iloc[focus]
with st.container(border=True):
    st.markdown(
        f"**Focused: candidate #{int(frow['rank']) + 1}** {md_code(frow['doc_id'])} "
        "· J/K move · 1 relevant · 2 not relevant · 3 unsure · Z undo"
    )
    with st.container(horizontal=True):
        for label, text, key in LABEL_BUTTONS:
            st.button(
                f"{text}",
                key=keys.browser_focus_label(label),
                shortcut=key,
                on_click=_label,
                args=(frow.to_dict(), label),
                type="primary" if label == "relevant" else "secondary",
            )
        st.button("Undo", key=keys.BROWSER_UNDO, shortcut=UNDO_SHORTCUT, on_click=labeling.undo, args=(sel,))
        st.button("Previous", key=keys.BROWSER_FOCUS_PREV, shortcut="K", on_click=_move_focus, args=(-1,))
        st.button("Next", key=keys.BROWSER_FOCUS_NEXT, shortcut="J", on_click=_move_focus, args=(1,))

st.caption(f"Candidates {page * page_size + 1}–{min(n, (page + 1) * page_size)} of {n} · page {page + 1} of {pages}")
for i in range(page * page_size, min(n, (page + 1) * page_size)):
    with st.container(border=True):
        if i == focus:
            st.caption("▶ focused")
        _describe(cands.iloc[i], i)

with st.container(horizontal=True):
    st.button("◀ Previous page", key=keys.BROWSER_PAGE_PREV, disabled=page == 0, on_click=_go_page, args=(page - 1,))
    st.button(
        "Next page ▶", key=keys.BROWSER_PAGE_NEXT, disabled=page >= pages - 1, on_click=_go_page, args=(page + 1,)
    )
bulk_label(sel, candidates_for(preds, qid))  # several of this query's candidates, one verdict (issue 16)
