"""Disagreements: pairs annotators judged differently, who said what, the model's view, and adjudication.

Agreement comes first, with what it was computed on: a kappa or alpha over
two pairs is noise, and an undefined or negative value needs saying why.
Then each open pair (query, document, every annotator's verdict by name, what
the majority policy makes of it, the run's P(FN|neg) or P(FP|pos) and P(rel)),
with buttons that record the settled verdict under the sidebar's name. An
adjudicated pair leaves the open list and overrules every merge policy.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import streamlit as st

import db
from db.adjudication import SELF_NOTE
from pages.common import auth, keys, labeling
from pages.common import resources as res
from pages.common.model_view import conditional_text
from pages.common.state import Selection, selection
from pages.common.widgets import doc_text, label_badge, md_code, md_escape, show_text

MAX_LISTED = 50
FEW_ITEMS = 20  # below this many shared pairs an agreement figure swings wildly with one verdict
VERDICT_BUTTONS = (("relevant", "Relevant"), ("not_relevant", "Not relevant"), ("unsure", "Leave undecided"))

st.title("Disagreements")
labeling.show_flash()
sel = selection()
if not sel.dataset:
    st.info("Choose a dataset in the sidebar.")
    st.stop()
name = res.store_name(sel.dataset)


# --- agreement, with its sample size ---------------------------------------------------------


def _agreement_note(agree: db.AgreementResult | None) -> str:
    """Why the figure reads as it does: undefined, negative, or resting on few pairs."""
    if agree is None or agree.value is None:
        return (
            "Undefined: it needs at least two annotators who judged the same pairs with more than one label "
            "between them. When every shared pair got the same single label, chance agreement is already 1 and "
            "kappa/alpha divide by zero."
        )
    notes = []
    if agree.value < 0:
        notes.append(
            "Below 0: the annotators agree less often than chance would predict from how often each uses each "
            "label. With a handful of pairs one disagreement is enough: two pairs, both disagreed, give −1."
        )
    if agree.n_items < FEW_ITEMS:
        notes.append(f"Only {agree.n_items} shared pair(s): one more verdict can move it a lot.")
    return " ".join(notes) or "1 is perfect agreement, 0 what chance alone gives."


def agreement_section(agree: db.AgreementResult | None) -> None:
    method = {"cohen_kappa": "Cohen's kappa", "krippendorff_alpha": "Krippendorff's alpha"}
    c = st.columns(3)
    c[0].metric(
        "Agreement",
        "—" if agree is None or agree.value is None else f"{agree.value:.2f}",
        help=method.get(agree.method if agree else "", "no agreement figure"),
    )
    c[1].metric("Pairs judged by two or more", 0 if agree is None else agree.n_items)
    observed = None if agree is None else agree.observed_agreement
    c[2].metric("Raw agreement", "—" if observed is None else f"{observed:.0%}", help="share of verdicts that match")
    st.caption(md_escape(_agreement_note(agree)))
    if agree is not None and len(agree.pairwise_items) > 1:
        st.dataframe(
            pd.DataFrame(
                [
                    {"annotator A": a, "annotator B": b, "shared pairs": agree.pairwise_items[(a, b)], "kappa": k}
                    for (a, b), k in agree.pairwise_kappa.items()
                ]
            ),
            hide_index=True,
        )


with res.session() as s:
    n_found, n_open = db.count_disagreements(s, name)
    try:
        agree = db.agreement(s, name)
    except db.AnnotationError:
        agree = None

agreement_section(agree)
st.caption(md_escape(f"How verdicts merge: {db.MAJORITY_TIE_RULE}; {db.ADJUDICATION_RULE}."))


# --- the pairs -------------------------------------------------------------------------------


def _pair_id(query_id: str, doc_id: str) -> str:
    """A short stable id for widget keys: a pair keeps its keys when the list above it changes."""
    return hashlib.sha1(f"{query_id}\t{doc_id}".encode()).hexdigest()[:12]


def _settle(s: Selection, item: db.Disagreement, verdict: str) -> None:
    if not s.annotator:
        labeling.flash("error", "Type your name first: an adjudication is recorded under it.")
        return
    if not auth.check("adjudicate"):
        return
    note = str(st.session_state.get(keys.dis_note(_pair_id(item.query_id, item.doc_id)), ""))
    try:
        with res.session() as session:
            db.adjudicate(
                session, name, item.query_id, item.doc_id, verdict, s.annotator, note=note, other_adjudicators=_others()
            )
    except db.AnnotationError as err:
        labeling.flash("error", str(err))
        return
    labeling.flash("success", f"Settled: {item.doc_id} for query {item.query_id} is {verdict.replace('_', ' ')}.")


def _others() -> bool | None:
    """Team mode: whether someone besides the signed-in person may adjudicate (then their own pairs are not theirs)."""
    if not auth.team_mode():
        return None
    with res.session() as session:
        return bool(db.adjudicators(session, auth.admins()) - {sel.annotator})


def _reopen(item: db.Disagreement) -> None:
    if not auth.check("adjudicate"):
        return
    with res.session() as session:
        db.clear_adjudication(session, name, item.query_id, item.doc_id)
    labeling.flash("info", f"Reopened: {item.doc_id} for query {item.query_id}.")


def _model_lines(row: dict[str, Any] | None) -> str:
    if row is None:
        return f"not among run {md_code(sel.run_id)}'s candidates" if sel.run_id else "no run chosen"
    p_rel = row.get("p_rel")
    labelled = "labelled positive" if row.get("label", 0) > 0 else "labelled negative"
    return (
        f"{labelled} · rank #{int(row['rank']) + 1}  \n"
        f"{md_escape(conditional_text(row))} · P(rel) {'—' if p_rel is None else format(float(p_rel), '.3f')}"
    )


def _majority(item: db.Disagreement) -> str:
    verdict = db.policy_verdict("majority", list(item.votes.values()))
    return "tie: undecided" if verdict is None else ("relevant" if verdict else "not relevant")


def show_pair(item: db.Disagreement, model: dict[str, Any] | None, texts: Any) -> None:
    """One disagreement: ids, texts (plain), verdicts by name, the model's view, and the adjudication."""
    pid = _pair_id(item.query_id, item.doc_id)
    with st.container(border=True):
        cols = st.columns([3, 3, 3], vertical_alignment="top")
        with cols[0]:
            st.markdown(f"query {md_code(item.query_id)} · doc {md_code(item.doc_id)}")
            show_text(texts.all_queries.get(item.query_id, "(query text missing)"))
        cols[1].markdown(
            f"{labeling.who_said(item.votes)}  \nmajority: {_majority(item)}  \n**Model** {_model_lines(model)}"
        )
        with cols[2]:
            if item.settled:
                st.markdown(
                    f"**Settled:** {label_badge(item.verdict)} by {md_escape(item.adjudicator or '', 40)}"
                    + (f" · {item.adjudicated_at:%Y-%m-%d %H:%M} UTC" if item.adjudicated_at else "")
                )
                if item.self_adjudicated and not item.note.startswith(SELF_NOTE):
                    st.caption(SELF_NOTE)  # settled before the store recorded it with the note
                if item.note:
                    show_text(item.note)
                st.button("Reopen", key=keys.dis_reopen(pid), on_click=_reopen, args=(item,))
            elif others and sel.annotator in item.votes:
                st.caption("You judged this pair: another adjudicator settles it.")
            else:
                if sel.annotator and sel.annotator in item.votes:
                    st.caption(f"You judged this pair: your verdict is recorded with the note “{SELF_NOTE}”.")
                st.text_input("Note (optional)", key=keys.dis_note(pid), placeholder="why this verdict")
                with st.container(horizontal=True):
                    for label, text in VERDICT_BUTTONS:
                        st.button(text, key=keys.dis_verdict(label, pid), on_click=_settle, args=(sel, item, label))
        # A fixed label: document text never goes into an expander's (Markdown) label.
        with st.expander("Document text"):
            show_text(doc_text(texts.corpus.get(item.doc_id)))


others = _others()
show_settled = st.toggle(f"Show settled pairs too ({n_found - n_open})", key=keys.DIS_SHOW_SETTLED, value=False)
n_listed = n_found if show_settled else n_open
st.subheader(f"{n_open} open of {n_found} disagreement(s)")
if not n_listed:
    st.success("No open disagreements." if n_found else "No pair has been judged differently by two people yet.")
    st.stop()
with res.session() as s:  # only the pairs this page shows
    listed = db.disagreements(s, name, open_only=not show_settled, limit=MAX_LISTED)

# The run's view of the listed pairs only: their rows found in the run's store, never the whole run.
model_rows: dict[tuple[str, str], dict[str, Any]] = {}
if sel.ready:
    found = res.run_store(sel.run_id).pair_rows((item.query_id, item.doc_id) for item in listed)
    model_rows = {(r["query_id"], r["doc_id"]): r for r in found.to_dict("records")}
split = sel.split or (res.splits(sel.dataset) or ["test"])[0]
texts = res.dataset(sel.dataset, split)
if n_listed > MAX_LISTED:
    st.caption(f"Showing the first {MAX_LISTED} of {n_listed}; settle these to see the next ones.")
for item in listed:
    show_pair(item, model_rows.get((item.query_id, item.doc_id)), texts)
