"""Hard-negative browser: one query's top-K candidates with the adapter's TP/FN/FP/TN probabilities.

Pick a query by id or words (any query the run scored in the split); read its
labelled positives; page through its candidates (rank, retriever score, the four
probabilities, P(FN|neg), the rerank position, human labels, the document's text)
and relabel them with a click or the keyboard: J/K move the focus, 1/2/3 label the
focused candidate and move on to the next one, Z undoes, N/P change query.

The address names the run and the query (``/browser?run=demo-squad&query=123``), so
a link opens the same query for a colleague. The candidates are a fragment: a label,
a focus move or a page turn redraws them alone, so the page keeps its place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from pages.common import keys, labeling, links
from pages.common import resources as res
from pages.common.bulk_label import bulk_label
from pages.common.labeling import LABEL_BUTTONS, UNDO_SHORTCUT
from pages.common.labels_count import labelled_positives
from pages.common.state import DEFAULT_THRESHOLD, Selection, require_run
from pages.common.widgets import (
    doc_parts,
    doc_text,
    focus_marker_html,
    label_badge,
    legend,
    md_code,
    md_escape,
    prob_bar,
    short,
    show_text,
)
from rrra_core.analysis.candidates import predicted_class, search_queries, with_rerank
from rrra_core.retrieval.rerank_choice import run_rerank_choice

PAGE_SIZES = (10, 20, 50)

st.title("Hard negatives")
sel = require_run()  # judgments' messages show as toasts in the candidates' fragment (below)
labeling.annotator_banner(sel)

# The run's candidates laid out by query: each view reads one query's rows, never the whole run.
store = res.run_store(sel.run_id)
data = res.dataset(sel.dataset, sel.split)
scored = store.query_index
pool = [q for q in data.qrels if q in scored]


def _use_split(split: str) -> None:
    st.session_state[keys.SPLIT] = split


if not pool:
    # The sidebar sets the run's split whenever the run changes: this is a split chosen afterwards.
    run_split = res.run_dataset(res.run_json(sel.run_id, "config.json", {}))[1]
    st.warning(
        f"Run {md_code(sel.run_id)} scored the {md_code(run_split)} split's queries; "
        f"none are in the {md_code(sel.split)} split."
    )
    if run_split in res.splits(sel.dataset):
        st.button(
            f"Show the {md_escape(run_split)} split",
            key=keys.BROWSER_SHOW_RUN_SPLIT,
            on_click=_use_split,
            args=(run_split,),
            type="primary",
        )
    st.stop()


# --- query picker -------------------------------------------------------------


def _set_query(qid: str) -> None:
    st.session_state[keys.QUERY] = qid
    st.session_state[keys.BROWSER_FOCUS] = 0
    st.session_state[keys.BROWSER_PAGE] = 0


def _step_query(options: list[str], step: int) -> None:
    cur = st.session_state.get(keys.QUERY)
    # From no query (a link's unknown one), Next opens the first and Prev the last.
    i = options.index(cur) if cur in options else (-1 if step > 0 else 0)
    _set_query(options[(i + step) % len(options)])


def _link_query_missing() -> str | None:
    """The query the page's address named when this run did not score it in this split; ``None`` otherwise.

    Then no query is open until the person picks one: opening the first query instead
    showed a colleague's link as if it pointed there.
    """
    asked = st.session_state.get(keys.LINK_QUERY)
    if asked is None or st.session_state.get(keys.QUERY) != asked or asked in pool:
        st.session_state.pop(keys.LINK_QUERY, None)
        return None
    return str(asked)


search = st.text_input("Find a query", key=keys.BROWSER_SEARCH, placeholder="words from the query, or its id")
# Every query the run scored in this split: a cap of 500 once hid 300 of the demo's 800 from the picker and N/P.
matches = search_queries(data.queries, search, within=pool, limit=len(pool))
if not matches:
    st.warning("No query matches; showing all.")
    matches = pool
missing = _link_query_missing()
if missing is not None:
    # The address is anyone's to write: its value goes in a code span, never parsed as Markdown.
    st.warning(
        f"The address names query {md_code(missing)}, which run {md_code(sel.run_id)} did not score in the "
        f"{md_code(sel.split)} split. Choose a query below.",
        icon="🔗",
    )
elif st.session_state.get(keys.QUERY) not in pool or (search.strip() and st.session_state[keys.QUERY] not in matches):
    _set_query(matches[0])
current = None if missing is not None else st.session_state[keys.QUERY]
options = matches if current is None or current in matches else [current, *matches]
st.session_state[keys.BROWSER_QUERY_PICKER] = current
cols = st.columns([8, 1, 1], vertical_alignment="bottom")
cols[0].selectbox(
    f"Query ({len(matches):,} of {len(pool):,})",
    options,
    key=keys.BROWSER_QUERY_PICKER,
    format_func=lambda q: f"{q} · {short(data.queries.get(q, ''), 100)}",
    on_change=lambda: _set_query(st.session_state[keys.BROWSER_QUERY_PICKER]),
    placeholder="Choose a query",
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
if missing is not None:
    st.stop()
qid = st.session_state[keys.QUERY]
links.write(links.QUERY, qid)

head = st.columns([8, 2], vertical_alignment="center")
head[0].markdown(f"**Query** {md_code(qid)}")
with head[1].popover("Link to this query", icon=":material/link:"):
    st.caption(
        "Opens this page, run and query under your name for anyone who can reach this app "
        "(the address bar holds it too); someone else types their own name in the sidebar:"
    )
    st.code(links.browser_link(sel.run_id, qid, sel.annotator), language=None, wrap_lines=True)
show_text(data.queries.get(qid, "(query text missing)"))
# The pairs the rows below badge as labelled positives: a retrained run's labels carry verdicts the qrels lack.
positives = labelled_positives(data.qrels.get(qid, {}), store.candidates(qid))
with st.expander(f"Labelled positives ({len(positives)})", expanded=len(positives) <= 3):
    for d in positives:
        st.markdown(f"{md_code(d)}")
        show_text(doc_text(data.corpus.get(d)))


# --- candidates ---------------------------------------------------------------


@dataclass(frozen=True)
class _View:
    """One query's candidates as drawn this time, with what the rows and buttons need."""

    cands: pd.DataFrame
    suspect: pd.Series
    human: dict[str, dict[str, str]]
    known: set[str]
    focus: int
    page_size: int
    title: str  # the title most candidates share, shown once above them ("" when none is shared)

    @property
    def n(self) -> int:
        return len(self.cands)


def _focus(f: int, page_size: int) -> None:
    """A person moved the focus (a label, J/K, an undo): focus row ``f`` and bring it into view."""
    st.session_state[keys.BROWSER_FOCUS] = f
    st.session_state[keys.BROWSER_PAGE] = f // page_size
    st.session_state[keys.BROWSER_SCROLL] = True


def _go_page(p: int, page_size: int) -> None:
    _focus(p * page_size, page_size)


def label_and_advance(row: dict[str, Any], label: str, at: int, n: int, page_size: int, s: Selection = sel) -> None:
    """Save ``label`` for the candidate at ``at``, then focus the next one (the review queue's flow)."""
    if labeling.save(s, row, label):
        _focus(min(at + 1, n - 1), page_size)


def _label_focused(label: str, cands: pd.DataFrame, page_size: int) -> None:
    """The keyboard's label: the focus is read when the key is pressed, so two quick presses label two rows."""
    at = min(int(st.session_state.get(keys.BROWSER_FOCUS, 0)), len(cands) - 1)
    label_and_advance(cands.iloc[at].to_dict(), label, at, len(cands), page_size)


def _undo(cands: pd.DataFrame, page_size: int, s: Selection = sel) -> None:
    """Undo the last judgment and, when it was on this query, focus its candidate again."""
    event = labeling.undo(s)
    docs = cands["doc_id"].tolist()
    if event is not None and event.query_id == cands["query_id"].iat[0] and event.doc_id in docs:
        _focus(docs.index(event.doc_id), page_size)


def _shared_title(cands: pd.DataFrame) -> str:
    """The title at least half the candidates carry (every SQuAD paragraph of an article has the same one)."""
    titles = Counter(doc_parts(data.corpus.get(d))[0] for d in cands["doc_id"])
    title, count = titles.most_common(1)[0] if titles else ("", 0)
    return title if count * 2 >= len(cands) else ""


def _controls() -> tuple[float, int]:
    with st.container(horizontal=True, vertical_alignment="bottom"):
        threshold = st.slider(
            "Suspect a false negative at P(FN|neg) ≥",
            0.0,
            1.0,
            float(st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD)),
            0.05,
            key=keys.BROWSER_THRESHOLD,
            on_change=lambda: st.session_state.__setitem__(keys.THRESHOLD, st.session_state[keys.BROWSER_THRESHOLD]),
            width=320,
        )
        page_size = st.selectbox("Per page", PAGE_SIZES, key=keys.BROWSER_PAGE_SIZE, width=110)
        legend()
    return float(threshold), int(page_size)


def _table(v: _View) -> None:
    cands = v.cands
    table = pd.DataFrame(
        {
            "rank": cands["rank"] + 1,
            "rerank": cands["rerank"] + 1,
            "score": cands["score"].round(4),
            "P(FN|neg)": cands["p_fn_given_neg"],
            "verdict": cands["verdict"],
            "qrels": cands["label"].map({1: "positive", 0: "negative"}),
            "suspected": v.suspect,
            "your label": [label_badge(v.human.get(d, {}).get(sel.annotator)) for d in cands["doc_id"]],
            "doc id": cands["doc_id"],
            "preview": [short(getattr(data.corpus.get(d), "text", ""), 80) for d in cands["doc_id"]],
        }
    )
    if v.known:
        table.insert(6, "answer-bearing", cands["doc_id"].isin(v.known))
    with st.expander(f"All {len(cands)} candidates as a table (sortable, downloadable)"):
        st.dataframe(
            table,
            hide_index=True,
            column_config={
                "P(FN|neg)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f"),
            },
        )


def _focus_panel(v: _View) -> None:
    """The focused candidate's buttons: what the keyboard shortcuts press."""
    frow = v.cands.iloc[v.focus]
    with st.container(border=True):
        st.markdown(
            f"**Focused: candidate #{int(frow['rank']) + 1}** {md_code(frow['doc_id'])} "
            "· 1 relevant · 2 not relevant · 3 unsure (then on to the next) · J/K move · Z undo"
        )
        with st.container(horizontal=True):
            for label, text, key in LABEL_BUTTONS:
                st.button(
                    text,
                    key=keys.browser_focus_label(label),
                    shortcut=key,
                    on_click=_label_focused,
                    args=(label, v.cands, v.page_size),
                    type="primary" if label == "relevant" else "secondary",
                )
            st.button(
                "Undo", key=keys.BROWSER_UNDO, shortcut=UNDO_SHORTCUT, on_click=_undo, args=(v.cands, v.page_size)
            )
            st.button(
                "Previous",
                key=keys.BROWSER_FOCUS_PREV,
                shortcut="K",
                on_click=_focus,
                args=(max(0, v.focus - 1), v.page_size),
            )
            st.button(
                "Next",
                key=keys.BROWSER_FOCUS_NEXT,
                shortcut="J",
                on_click=_focus,
                args=(min(v.n - 1, v.focus + 1), v.page_size),
            )


def _numbers(v: _View, i: int, cols: list[Any]) -> None:
    """Rank and score, the probability bar, flags, the rerank move and the labels of one candidate."""
    row = v.cands.iloc[i]
    d = row["doc_id"]
    cols[0].markdown(f"**#{int(row['rank']) + 1}** {md_code(d)}  \n{row['score']:.4f}")
    with cols[1]:
        prob_bar(row)
    flags = []
    if v.suspect.iloc[i]:
        flags.append(":red-badge[suspected FN]")
    if row["label"] > 0:
        flags.append(":green-badge[labelled positive]")
    if d in v.known:
        flags.append(":orange-badge[answer-bearing]")
    if row["label"] > 0 and "p_fp_given_pos" in row:
        cols[2].markdown(f"P(FP\\|pos) **{row['p_fp_given_pos']:.3f}**  \n" + " ".join(flags))
    else:
        cols[2].markdown(f"P(FN\\|neg) **{row['p_fn_given_neg']:.3f}**  \n" + " ".join(flags))
    move = int(row["rank"]) - int(row["rerank"])
    arrow = f":green[▲{move}]" if move > 0 else (f":red[▼{-move}]" if move < 0 else "=")
    cols[3].markdown(f"rerank **#{int(row['rerank']) + 1}** {arrow}")
    mine = v.human.get(d, {}).get(sel.annotator)
    others = {a: lab for a, lab in v.human.get(d, {}).items() if a != sel.annotator}
    cols[4].markdown(f"you: {label_badge(mine)}" + (f"  \nothers: {labeling.who_said(others)}" if others else ""))


def _row(v: _View, i: int) -> None:
    """One candidate: its numbers and label buttons, then its text, readable without a click."""
    row = v.cands.iloc[i]
    if i == v.focus:
        st.markdown(":blue-badge[▶ Focused] the keys 1 · 2 · 3 label this candidate")
    cols = st.columns([1.3, 2.0, 1.5, 1.1, 1.4, 3.6], vertical_alignment="center")
    _numbers(v, i, cols)
    mine = v.human.get(row["doc_id"], {}).get(sel.annotator)
    with cols[5], st.container(horizontal=True):
        for label, text, _ in LABEL_BUTTONS:
            st.button(
                text,
                key=keys.browser_label(label, i),
                on_click=label_and_advance,
                args=(row.to_dict(), label, i, v.n, v.page_size),
                type="primary" if mine == label else "secondary",
            )
    title, body = doc_parts(data.corpus.get(row["doc_id"]))
    # Plain text only (st.text): document text never goes through Markdown, so a bare URL never becomes a link.
    show_text(f"{title}\n\n{body}" if title and title != v.title else body)


def _with_run_rerank(cands: pd.DataFrame) -> pd.DataFrame:
    """The rerank column as the run reranks: its chosen signal and strength (off: the retriever's order).

    A phase-2 run made before runs chose their rerank keeps the column it always had (P(rel), λ 1).
    """
    config, metrics = (res.run_json(sel.run_id, name, {}) for name in ("config.json", "metrics.json"))
    choice = run_rerank_choice(config, metrics)
    if choice is None:
        return cands
    # predictions.parquet keeps QA as a cosine; the rerank reads it mapped to (0, 1], as evaluation does.
    signal = cands["p_rel"] if choice.setting.signal == "p_rel" else (1.0 + cands["qa"]) / 2.0
    return with_rerank(cands.assign(_signal=signal), choice.setting.lambda_rr, "_signal").drop(columns="_signal")


@st.fragment
def _candidates(query_id: str) -> None:
    """Everything a label, a focus move or a page turn changes, redrawn alone so the page never jumps."""
    labeling.show_flash(toast=True)  # a toast: a message box here would push the list down
    cands = _with_run_rerank(store.candidates(query_id))
    cands["verdict"] = predicted_class(cands)
    threshold, page_size = _controls()
    n = len(cands)
    focus = min(int(st.session_state.get(keys.BROWSER_FOCUS, 0)), n - 1)
    v = _View(
        cands=cands,
        suspect=(cands["label"] == 0) & (cands["p_fn_given_neg"] >= threshold),
        human=labeling.labels_for(sel, query_id),
        known=res.known_fn(sel.dataset, sel.split).get(query_id, set()),
        focus=focus,
        page_size=page_size,
        title=_shared_title(cands),
    )
    _table(v)
    pages = max(1, -(-n // page_size))
    page = min(int(st.session_state.get(keys.BROWSER_PAGE, focus // page_size)), pages - 1)
    _focus_panel(v)
    st.caption(
        f"Candidates {page * page_size + 1}–{min(n, (page + 1) * page_size)} of {n} · page {page + 1} of {pages}"
        + (" · the title most of them share:" if v.title else "")
    )
    if v.title:
        show_text(v.title)
    for i in range(page * page_size, min(n, (page + 1) * page_size)):
        with st.container(border=True, key=keys.BROWSER_FOCUSED_ROW if i == focus else None):
            _row(v, i)
    with st.container(horizontal=True):
        st.button(
            "◀ Previous page",
            key=keys.BROWSER_PAGE_PREV,
            disabled=page == 0,
            on_click=_go_page,
            args=(page - 1, page_size),
        )
        st.button(
            "Next page ▶",
            key=keys.BROWSER_PAGE_NEXT,
            disabled=page >= pages - 1,
            on_click=_go_page,
            args=(page + 1, page_size),
        )
    # Outline the focused row; bring it on screen only when a person moved the focus, never on a page's first
    # draw, where it would scroll past the name prompt and the query (static CSS and JS, a number).
    scroll = bool(st.session_state.pop(keys.BROWSER_SCROLL, False))
    st.html(focus_marker_html(keys.BROWSER_FOCUSED_ROW, focus, scroll=scroll), unsafe_allow_javascript=True)


_candidates(qid)
bulk_label(sel, store.candidates(qid))  # several of this query's candidates, one verdict (issue 16)
