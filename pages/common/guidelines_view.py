"""The dataset's labelling guidelines beside the review queue, editable by anyone who labels it.

In team mode (``auth``) only adjudicators and admins see the editor, and saving checks it again.

Stored with the dataset in the annotation store (``db.guidelines``), so every
annotator of a shared store reads the same rules. Written by the team, so shown
as Markdown, unlike document text; but inert (``safe_markdown``): an image is
shown as its address, raw HTML as text, and only http(s) links are live, so
whoever edits the guidelines cannot make reviewers' browsers fetch anything.
"""

from __future__ import annotations

import streamlit as st

import db

from . import auth, keys
from . import resources as res
from .labeling import flash
from .safe_markdown import inert_markdown_html
from .state import Selection
from .widgets import md_escape


def _save(sel: Selection) -> None:
    if not auth.check("edit_guidelines"):
        return
    text = str(st.session_state.get(keys.GUIDELINES_TEXT) or "")
    try:
        with res.session() as s:
            db.save_guidelines(s, res.store_name(sel.dataset), text, sel.annotator or None)
    except db.AnnotationError as err:
        flash("error", str(err))
        return
    flash("success", "Guidelines saved.")


def guidelines_panel(sel: Selection) -> None:
    """The guidelines (or a hint to write them) and an editor that saves them for the whole dataset."""
    with res.session() as s:
        row = db.get_guidelines(s, res.store_name(sel.dataset))
    text = row.text if row is not None else ""
    st.markdown("**Labelling guidelines**")
    if text.strip():
        st.html(inert_markdown_html(text))
        st.caption(f"Last edited by {md_escape(row.updated_by or 'someone')} · {row.updated_at:%Y-%m-%d %H:%M} UTC")
    else:
        st.caption("None yet for this dataset: write what counts as relevant, so every annotator judges alike.")
    if not auth.can("edit_guidelines"):
        return
    with st.expander("Edit the guidelines"):
        # Filled from the store when the dataset changes, and never over what someone is typing.
        if st.session_state.get(keys.GUIDELINES_FOR) != sel.dataset:
            st.session_state[keys.GUIDELINES_TEXT] = text
            st.session_state[keys.GUIDELINES_FOR] = sel.dataset
        st.text_area("Guidelines (Markdown)", key=keys.GUIDELINES_TEXT, height=200, max_chars=db.GUIDELINES_MAX_CHARS)
        st.button("Save the guidelines", key=keys.GUIDELINES_SAVE, on_click=_save, args=(sel,))
