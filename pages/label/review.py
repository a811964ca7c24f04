"""Review queue: the next unreviewed suspected false negative across all queries, judged in one keystroke.

Query, candidate and a labelled positive side by side; 1 relevant, 2 not
relevant, 3 unsure, S skip, Z undo. Each judgment is saved at once with the
adapter's probabilities for the pair, and the queue moves on.
"""

from __future__ import annotations

import streamlit as st

import db
from pages.common import keys, labeling
from pages.common import resources as res
from pages.common.labeling import LABEL_BUTTONS, UNDO_SHORTCUT
from pages.common.state import DEFAULT_THRESHOLD, require_run
from pages.common.widgets import doc_text, md_code, prob_bar, show_text

ORDERS = {
    "p_fn": "Most likely false negative first",
    "uncertainty": "Most uncertain first (P near 0.5)",
    "random": "Random (seeded)",
}

st.title("Review queue")
labeling.show_flash()
sel = require_run()

preds = res.predictions(sel.run_id)
data = res.dataset(sel.dataset, sel.split)
split_queries = set(data.qrels)
name = res.store_name(sel.dataset)

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
    order = st.selectbox("Order", list(ORDERS), format_func=ORDERS.get, key=keys.REVIEW_ORDER, width=300)
    st.caption(f"Split: {sel.split} (sidebar)")
threshold = float(st.session_state.get(keys.REVIEW_THRESHOLD, st.session_state.get(keys.THRESHOLD, DEFAULT_THRESHOLD)))

# Narrow in pandas first (80k rows -> the few hundred above the threshold),
# then let the store drop what this annotator already judged and order the rest.
pool = preds[(preds["label"] == 0) & (preds["p_fn_given_neg"] >= threshold) & preds["query_id"].isin(split_queries)]
skipped = st.session_state.setdefault(keys.REVIEW_SKIPPED, set())
with res.session() as s:
    queue = db.review_queue(s, name, pool, order=order, annotator=sel.annotator or None, exclude_judged=True, seed=0)
    mine = db.judged_pairs(s, name, annotator=sel.annotator) if sel.annotator else set()
queue = [r for r in queue if (r["query_id"], r["doc_id"]) not in skipped]
done_here = sum(1 for q, d in mine if q in split_queries)

c = st.columns(3)
c[0].metric("Left in the queue", f"{len(queue):,}")
c[1].metric("Judged by you (this split)", f"{done_here:,}")
c[2].metric("Skipped this session", f"{len(skipped):,}")
total = len(queue) + done_here
st.progress(
    done_here / total if total else 1.0,
    text=f"{done_here} of {total} suspected false negatives above {threshold:.2f} reviewed",
)

if not queue:
    st.success("Nothing left to review at this threshold. Lower it, or switch split or run.")
    if skipped and st.button("Bring back skipped items"):
        st.session_state[keys.REVIEW_SKIPPED] = set()
        st.rerun()
    st.stop()

item = queue[0]
qid, did = item["query_id"], item["doc_id"]


def _judge(label: str) -> None:
    labeling.save(sel, item, label)


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
    st.button("Undo", key=keys.REVIEW_UNDO, shortcut=UNDO_SHORTCUT, on_click=labeling.undo, args=(sel,))
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
