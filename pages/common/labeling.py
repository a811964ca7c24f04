"""Saving and undoing judgments from any page, with the model's view at that moment.

Every save is one committed transaction in the annotation store, made in the
button's callback, so the judgment is on disk before the page redraws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import streamlit as st

import db

from . import auth
from . import resources as res
from .keys import ANNOTATOR, ANNOTATOR_PROMPT, FLASH
from .state import Selection
from .widgets import label_badge, md_code, md_escape

LABEL_BUTTONS = (
    # (label, button text, shortcut)
    # Streamlit reserves C and R, so digits: they sit under one hand.
    ("relevant", "Relevant", "1"),
    ("not_relevant", "Not relevant", "2"),
    ("unsure", "Unsure", "3"),
)
UNDO_SHORTCUT = "Z"


def _model_view(row: Mapping[str, Any]) -> dict[str, Any]:
    view = {}
    for k in ("p_tp", "p_fn", "p_fp", "p_tn", "rank", "score"):
        v = row.get(k)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            view[k] = int(v) if k == "rank" else float(v)
    return view


def save(sel: Selection, row: Mapping[str, Any], label: str, queue_version: str | None = None) -> bool:
    """Record ``sel.annotator``'s ``label`` for the candidate ``row`` (a predictions row); whether it was saved.

    ``queue_version`` names the learnt review queue's model version whose order showed the pair.
    """
    if not sel.annotator:
        flash("error", "Type your name first (at the top of the page or in the sidebar): judgments are saved under it.")
        return False
    if not auth.check("label"):
        return False
    try:
        with res.session() as s:
            db.save_judgment(
                s,
                res.store_name(sel.dataset),
                str(row["query_id"]),
                str(row["doc_id"]),
                label,
                sel.annotator,
                model_view={**_model_view(row), "queue_version": queue_version},
                run_id=sel.run_id,
            )
    except db.AnnotationError as err:
        flash("error", str(err))
        return False
    flash("success", f"Saved: {row['doc_id']} is {label.replace('_', ' ')} for query {row['query_id']}.")
    return True


def undo(sel: Selection) -> Any:
    """Undo ``sel.annotator``'s last judgment on this dataset; the undo event, or ``None``."""
    if not sel.annotator or not auth.check("label"):
        return None
    try:
        with res.session() as s:
            event = db.undo_last(s, res.store_name(sel.dataset), sel.annotator)
    except db.AnnotationError as err:
        flash("error", str(err))
        return None
    if event is None:
        flash("info", "Nothing to undo.")
    else:
        flash("success", f"Undone: your last judgment ({event.doc_id} for query {event.query_id}).")
    return event


def flash(kind: str, message: str) -> None:
    """Remember a message to show once, after the rerun the callback triggers."""
    st.session_state[FLASH] = (kind, message)


def show_flash(toast: bool = False) -> None:
    """Show the last judgment's message once; as a toast where a message box would push the page down."""
    item = st.session_state.pop(FLASH, None)
    if item is not None:
        kind, message = item
        # Messages carry query and document ids, which are user data: escape them.
        if toast:
            st.toast(md_escape(message), icon={"error": "⚠️", "success": "✅"}.get(kind, "ℹ️"))
        else:
            {"error": st.error, "info": st.info, "success": st.success}.get(kind, st.info)(md_escape(message))


def _take_name() -> None:
    st.session_state[ANNOTATOR] = str(st.session_state.get(ANNOTATOR_PROMPT) or "").strip()


def annotator_banner(sel: Selection) -> None:
    """Say whose name the judgments made on this page go under; ask for one when there is none.

    A new session has no name unless its URL or ``RRRA_ANNOTATOR`` gives one (no silent
    default): judgments under a wrong name are worse than a question.
    """
    if sel.annotator:
        # A code span: the name can come from a shared link's URL, and code never renders as a link.
        where = "signed in" if auth.team_mode() else "change it in the sidebar"
        st.markdown(f":material/person: Labelling as **{md_code(sel.annotator)}** · {where}")
        return
    st.warning("Who is labelling? Type your name: every judgment is saved under it (it stays in the address).")
    st.text_input("Your name", key=ANNOTATOR_PROMPT, max_chars=64, on_change=_take_name, width=320)


def who_said(votes: Mapping[str, str]) -> str:
    """``alice: ✅ relevant · bob: ❌ not relevant``, names escaped, for a Markdown line ("others: ...")."""
    return " · ".join(f"{md_escape(who, 40)}: {label_badge(label)}" for who, label in sorted(votes.items()))


def labels_for(sel: Selection, query_id: str) -> dict[str, dict[str, str]]:
    """``{doc_id: {annotator: label}}`` for one query."""
    with res.session() as s:
        rows = db.list_by_query(s, res.store_name(sel.dataset), str(query_id))
    out: dict[str, dict[str, str]] = {}
    for j in rows:
        out.setdefault(j.doc_id, {})[j.annotator] = j.label
    return out
