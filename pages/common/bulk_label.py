"""Bulk labelling: several candidates of one query picked at once and given one verdict, in one transaction.

Annotation tools let people mark a run of obvious negatives (or one article's
paragraphs) in one go instead of one click per row. The verdicts are saved
together (``db.save_judgments``: all or none), each with the model's view of
its pair, exactly as a single save records it; undo steps back one pair at a time.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db

from . import auth, keys
from . import resources as res
from .labeling import LABEL_BUTTONS, _model_view, flash
from .state import Selection

VERDICT_NAMES = {label: text for label, text, _ in LABEL_BUTTONS}


def bulk_items(sel: Selection, rows: pd.DataFrame, label: str) -> list[dict]:
    """One ``db.save_judgments`` item per predictions row: ids, the verdict, the annotator and the model's view."""
    return [
        {"query_id": str(r["query_id"]), "doc_id": str(r["doc_id"]), "label": label, "annotator": sel.annotator}
        | _model_view(r)
        for r in rows.to_dict("records")
    ]


def _apply(sel: Selection, cands: pd.DataFrame) -> None:
    picked = list(st.session_state.get(keys.BULK_PICK) or [])
    label = str(st.session_state.get(keys.BULK_VERDICT))
    if not sel.annotator:
        flash("error", "Type your name in the sidebar first: judgments are saved under it.")
        return
    if not auth.check("label"):
        return
    rows = cands[cands["doc_id"].isin(picked)]
    try:
        with res.session() as s:
            db.save_judgments(s, res.store_name(sel.dataset), bulk_items(sel, rows, label), run_id=sel.run_id)
    except db.AnnotationError as err:
        flash("error", str(err))
        return
    st.session_state[keys.BULK_PICK] = []  # in the callback: before the widget is drawn again
    flash(
        "success", f"Saved: {len(rows)} candidates are {label.replace('_', ' ')} for query {rows['query_id'].iat[0]}."
    )


def bulk_label(sel: Selection, cands: pd.DataFrame) -> None:
    """Pick any of the query's candidates (``cands``: its predictions rows) and give them one verdict."""
    if cands.empty:
        return
    by_doc = cands.set_index("doc_id")
    options = by_doc.index.tolist()
    # The picks of another query (or run) are not options here: a multiselect refuses unknown values.
    st.session_state[keys.BULK_PICK] = [d for d in st.session_state.get(keys.BULK_PICK) or [] if d in by_doc.index]
    with st.expander("Label several candidates at once"):
        picked = st.multiselect(
            "Candidates",
            options,
            format_func=lambda d: (
                f"#{int(by_doc.at[d, 'rank']) + 1} · {d} · P(FN|neg) {by_doc.at[d, 'p_fn_given_neg']:.2f}"
            ),
            key=keys.BULK_PICK,
            placeholder="Choose the candidates to label",
        )
        with st.container(horizontal=True, vertical_alignment="bottom"):
            label = st.radio(
                "Verdict", list(VERDICT_NAMES), format_func=VERDICT_NAMES.get, key=keys.BULK_VERDICT, horizontal=True
            )
            st.button(
                f"Label {len(picked)} as {VERDICT_NAMES[label].lower()}",
                key=keys.BULK_APPLY,
                disabled=not picked,
                on_click=_apply,
                args=(sel, cands),
            )
