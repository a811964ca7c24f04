"""Review queue: the next unreviewed suspected false negative across all queries, judged in one keystroke.

Query, candidate and a labelled positive side by side; 1 relevant, 2 not
relevant, 3 unsure, S skip, Z undo. Each judgment is saved at once with the
adapter's probabilities for the pair and the queue model version that showed
it, and the queue moves on. The ``learnt`` order reads the latest refit of the
review-queue model (``runs/<id>/review/``); after every N judgments the page
starts the next refit in the background and keeps serving the current order.
"""

from __future__ import annotations

import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st

import db
from pages.common import jobs_view, keys, labeling
from pages.common import resources as res
from pages.common.downloads import chart
from pages.common.guidelines_view import guidelines_panel
from pages.common.labeling import LABEL_BUTTONS, UNDO_SHORTCUT
from pages.common.state import DEFAULT_THRESHOLD, require_run
from pages.common.widgets import doc_text, md_code, md_escape, prob_bar, show_text
from rrra_core.review import SimConfig
from rrra_core.runtime.errors import UserError

ORDERS = {
    "learnt": "Learnt from reviewers' verdicts",
    "adapter": "Adapter: most likely false negative first",
    "retriever": "Retriever score: hardest negative first",
    "margin": "Relative margin: as close as the positive first",
    "uncertainty": "Most uncertain first (P(FN) near 0.5)",
    "random": "Random (seeded)",
}
ADAPTIVE = ("learnt", "uncertainty")  # the orders that read the latest refit
RECENT = 20  # the found rate is over this many latest reviews

st.title("Review queue")
labeling.show_flash()
sel = require_run()
labeling.annotator_banner(sel)

data = res.dataset(sel.dataset, sel.split)
split_queries = set(data.qrels)
name = res.store_name(sel.dataset)


def _unpin() -> None:
    st.session_state.pop(keys.REVIEW_CURRENT, None)


with st.container(horizontal=True, vertical_alignment="bottom"):
    st.slider(
        "Threshold on P(FN|neg)",
        0.0,
        1.0,
        float(st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD)),
        0.05,
        key=keys.REVIEW_THRESHOLD,
        width=300,
        on_change=lambda: st.session_state.__setitem__(keys.THRESHOLD, st.session_state[keys.REVIEW_THRESHOLD]),
    )
    order = st.selectbox(
        "Order", list(ORDERS), format_func=ORDERS.get, key=keys.REVIEW_ORDER, width=320, on_change=_unpin
    )
    every = SimConfig().refit_every
    if order in ADAPTIVE:
        every = int(
            st.number_input(
                "Refit after every N judgments",
                min_value=1,
                max_value=1000,
                value=every,
                key=keys.REVIEW_REFIT_EVERY,
                width=200,
                help="The queue model learns from everyone's verdicts on this dataset, in the background.",
            )
        )
    st.caption(f"Split: {sel.split} (sidebar)")
threshold = float(st.session_state.get(keys.REVIEW_THRESHOLD, st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD)))

version, learnt_from, skipped_versions = res.queue_version(sel.run_id)
if skipped_versions and order in ADAPTIVE:
    # A damaged version gives way to the one before it; the next refit writes a new one.
    fallback = f"ordering by {version.name}" if version is not None else "no saved model can be read"
    st.warning(
        f"The newest queue model cannot be read ({md_escape(skipped_versions[0])}); {fallback} until the next "
        "refit writes a new one.",
        icon=":material/history:",
    )
shown_version = version if order in ADAPTIVE else None
try:
    # The order is positions into the run's store, built once per order and version (res.live_review_queue):
    # a rerun counts with a few array comparisons and walks the order's head, never every candidate's row.
    store = res.run_store(sel.run_id)
    live = res.live_review_queue(sel.run_id, order, shown_version)
except UserError as err:  # a damaged predictions.parquet: its one line, naming the file
    st.error(md_escape(str(err)))
    st.stop()
order_note = live.note
in_split = res.run_split_mask(sel.run_id, sel.dataset, sel.split)

skipped = st.session_state.setdefault(keys.REVIEW_SKIPPED, set())
with res.session() as s:
    judged_all = db.judged_pairs(s, name)
    mine = db.judged_pairs(s, name, annotator=sel.annotator) if sel.annotator else set()
# The pool: suspects at the threshold in the split; the queue drops what this annotator judged (anyone's
# judgment, without a name) and what this session skipped.
judged = mine if sel.annotator else judged_all
n_pool = live.pool_count(store, threshold, in_split)
gone_at = store.negative_positions(store.locate(judged | skipped).row)
n_queue = n_pool - int(live.in_pool(store, gone_at, threshold, in_split).sum())
done_here = sum(1 for q, d in mine if q in split_queries)


def _refit_if_due() -> None:
    """Start a refit when none exists yet or N judgments came in since the latest; never twice for one count."""
    state = jobs_view.refit_job(sel.run_id)
    if state is not None and state.active:
        return
    n_judged = len(judged_all)
    since = n_judged - int(version.model.get("n_judged", 0)) if version is not None else None
    last = st.session_state.setdefault(keys.REVIEW_REFIT_LAUNCHED, {}).get(sel.run_id)
    if (since is None or since >= every) and (last is None or n_judged - last >= every):
        st.session_state[keys.REVIEW_REFIT_LAUNCHED][sel.run_id] = n_judged
        jobs_view.start_refit(sel.run_id)


def _refit_status(following: bool) -> None:
    """Say that a refit runs; once the one this page follows ends, redraw the page with the new version."""
    state = jobs_view.refit_job(sel.run_id)
    if state is not None and state.active:
        elapsed = time.time() - (state.started_at or time.time())
        st.caption(
            f":material/autorenew: Refitting the queue model in the background ({elapsed:.0f} s); "
            "the current order serves meanwhile."
        )
    elif following:
        st.rerun(scope="app")  # the item on screen stays (REVIEW_CURRENT); the caption names the new version
    elif state is not None and state.status in ("failed", "lost"):
        st.warning(f"The last refit {state.status}: {md_escape(state.error or 'no message')}")


def _model_caption() -> None:
    if version is None:
        st.caption(f"{order_note}.")
        return
    yours = len(learnt_from & mine)
    n = version.n_verdicts
    st.caption(
        f"Ordered by model {version.name}, learnt from {n} verdict{'s' * (n != 1)} ({yours} of them yours) · "
        f"{md_escape(version.model.get('note', ''))}" + (f" · {order_note}" if order_note else "")
    )


SIGNALS = {
    "adapter": "Adapter P(FN|neg)",
    "retriever": "Retriever score",
    "margin": "Relative margin",
    "bm25": "BM25",
    "pos_sim": "Closeness to the positives",
    "pos_sim@q": "Closeness to the positives, within the query",
    "fusion": "All signals fused, equal weights",
    "prior": "Unsupervised blend",
    "model": "Model fitted on the verdicts",
    "blend": "Former learnt order (fixed per-query boost)",
}


def _why_panel() -> None:
    """Why the queue orders as it does: each signal's belief and its evidence, the boost, the recent hit rates.

    Reads only the shown version's ``model.json`` (written by the refit), never the run's candidates.
    """
    why = (version.model.get("explain") or {}) if version is not None else {}
    if not why.get("arms"):
        return
    with st.expander("Why this order", icon=":material/insights:"):
        rows = [
            {
                "signal": SIGNALS.get(arm, arm),
                "belief (hit rate)": a["belief"],
                "verdicts it rests on": a["verdicts"],
                "false negatives among them": a["hits"],
                "cold start": a["cold_start"],
                "next items planned": a["planned"],
                "followed": "✓" if arm == why["best"] else "",
            }
            for arm, a in sorted(why["arms"].items(), key=lambda kv: -kv[1]["belief"])
        ]
        st.dataframe(rows, hide_index=True, key=keys.REVIEW_WHY_TABLE)
        boost = why.get("boost") or {}
        st.caption(
            "Each signal's belief is its hit rate on the judged items it would have shown when they were shown "
            f"(its next {md_escape(str(version.model.get('config', {}).get('bandit', {}).get('window', 20)))} "
            "unjudged items at the refit before), from a cold start read off this run. The next items are drawn "
            "from the signals by those "
            "beliefs, so a signal still unproven keeps a share of the queue; the rest follows "
            f"**{md_escape(SIGNALS.get(why['best'], why['best']))}**. Per-query boost learnt from the verdicts: "
            f"{boost.get('per_false_negative', 0):+.2f} per confirmed false negative in the query, "
            f"{boost.get('per_rejection', 0):+.2f} per rejection (0 where false negatives do not cluster)."
        )
        recent = why.get("recent") or {}
        if recent.get("n"):
            best = recent.get("best_static")
            n, hits = recent["n"], recent["hits"]
            line = f"Last {n} judged items: {hits} false negatives ({hits / n:.0%})"
            if best and recent.get("best_static_n"):
                k = recent["best_static_n"]
                line += (
                    f" · the best single order ({md_escape(SIGNALS.get(best, best))}) on the last {k} judged "
                    f"items it would have shown: {recent['best_static_hits']} ({recent['best_static_hits'] / k:.0%})"
                )
            st.markdown(line)


def _session_panel() -> None:
    """False negatives found against items reviewed on this page in this session, and the recent rate."""
    history = st.session_state.get(keys.REVIEW_HISTORY) or []
    if not history:
        return
    found = np.cumsum([label == "relevant" for *_, label in history])
    recent = [label == "relevant" for *_, label in history[-RECENT:]]
    fig = go.Figure(
        go.Scatter(x=list(range(1, len(history) + 1)), y=found.tolist(), mode="lines+markers", name="found")
    )
    fig.update_layout(
        height=220,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title="This session: false negatives found",
        xaxis_title="items reviewed",
        yaxis_title="found",
    )
    left, right = st.columns([3, 1])
    with left:
        chart(fig, "review_session_found", key=keys.REVIEW_FOUND_CHART)
    right.metric(
        f"Found rate, last {len(recent)}",
        f"{np.mean(recent):.0%}",
        help=f"{int(sum(recent))} false negatives among your last {len(recent)} reviews on this page",
    )


# What is left, counted over the suspects themselves: judged (by you, or by anyone without a name) of all of them.
judged_at = store.negative_positions(store.locate(judged).row)
judged_suspects = int(live.in_pool(store, judged_at, threshold, in_split).sum())
c = st.columns(4)
c[0].metric("Left in the queue", f"{n_queue:,}", help="Suspects above the threshold not yet judged or skipped")
c[1].metric("Judged / suspects", f"{judged_suspects:,} / {n_pool:,}", help="Suspects above the threshold")
c[2].metric("Judged by you (this split)", f"{done_here:,}")
c[3].metric("Skipped this session", f"{len(skipped):,}")
st.progress(
    judged_suspects / n_pool if n_pool else 1.0,
    text=f"{judged_suspects} of {n_pool} suspected false negatives above {threshold:.2f} judged, {n_queue} left",
)
with st.sidebar:
    guidelines_panel(sel)
if order in ADAPTIVE:
    _model_caption()
    _why_panel()
    _refit_if_due()
    refit = jobs_view.refit_job(sel.run_id)
    following = refit is not None and refit.active
    (st.fragment(run_every=2.0)(_refit_status) if following else _refit_status)(following)
    if threshold > 0 and order == "learnt":
        st.caption(
            "The learnt order was measured over every candidate: a threshold of 0 lets it reach "
            "the false negatives the adapter misses."
        )

first = live.first_open(store, threshold, in_split, gone_at)
if first is None:
    st.success("Nothing left to review at this threshold. Lower it, or switch split or run.")
    if skipped and st.button("Bring back skipped items"):
        st.session_state[keys.REVIEW_SKIPPED] = set()
        st.rerun()
    _session_panel()
    st.stop()

# The item on screen stays there until it is judged or skipped, even if a refit reorders the queue meanwhile;
# it keeps the version that showed it.
pinned = st.session_state.get(keys.REVIEW_CURRENT)
at = None
if pinned is not None and pinned[0] == sel.run_id and (pinned[1], pinned[2]) not in judged | skipped:
    hits = store.negative_positions(store.locate([(pinned[1], pinned[2])]).row)
    at = int(hits[0]) if len(hits) and live.in_pool(store, hits, threshold, in_split)[0] else None
if at is None:
    at = first
    item = live.item(store, at)
    pinned = (sel.run_id, item["query_id"], item["doc_id"], getattr(shown_version, "name", None))
    st.session_state[keys.REVIEW_CURRENT] = pinned
item = live.item(store, at)
qid, did = item["query_id"], item["doc_id"]


def _judge(label: str) -> None:
    if labeling.save(sel, item, label, queue_version=pinned[3]):
        st.session_state.setdefault(keys.REVIEW_HISTORY, []).append((qid, did, label))


def _undo() -> None:
    event = labeling.undo(sel)
    history = st.session_state.get(keys.REVIEW_HISTORY) or []
    if event is not None and history and tuple(history[-1][:2]) == (event.query_id, event.doc_id):
        history.pop()


def _skip() -> None:
    st.session_state[keys.REVIEW_SKIPPED].add((qid, did))


def _open() -> None:
    st.session_state[keys.QUERY] = qid


st.markdown(f"**Query** {md_code(qid)}")
show_text(data.queries.get(qid, "(query text missing)"))

with st.container(horizontal=True):
    for label, text, key in LABEL_BUTTONS:
        st.button(
            text,
            key=keys.review_label(label),
            shortcut=key,
            on_click=_judge,
            args=(label,),
            type="primary" if label == "relevant" else "secondary",
        )
    st.button("Skip", key=keys.REVIEW_SKIP, shortcut="S", on_click=_skip)
    st.button("Undo", key=keys.REVIEW_UNDO, shortcut=UNDO_SHORTCUT, on_click=_undo)
st.caption("Is the candidate relevant to the query? 1 relevant · 2 not relevant · 3 unsure · S skip · Z undo")

left, right = st.columns(2)
with left, st.container(border=True):
    st.markdown(
        f"**Candidate** {md_code(did)} · rank #{int(item['rank']) + 1} · score {item['score']:.4f} · "
        f"P(FN|neg) **{item['p_fn_given_neg']:.3f}**"
    )
    prob_bar(item)
    if did in res.known_fn(sel.dataset, sel.split).get(qid, set()):
        st.markdown(":orange-badge[contains the answer (same article)]")
    show_text(doc_text(data.corpus.get(did)))
with right, st.container(border=True):
    positives = [d for d, r in data.qrels.get(qid, {}).items() if r > 0]
    if positives:
        st.markdown(
            f"**A labelled positive** {md_code(positives[0])}"
            + (f" (1 of {len(positives)})" if len(positives) > 1 else "")
        )
        show_text(doc_text(data.corpus.get(positives[0])))
    else:
        st.caption("This query has no labelled positive in this split.")

st.page_link(
    "pages/label/browser.py", label="Open this query in the hard-negative browser", icon=":material/manage_search:"
)
if st.session_state.get(keys.QUERY) != qid:
    _open()
_session_panel()
