"""The sidebar (dataset, run, annotator, split) every page shares.

``app.py`` draws the sidebar before running the page, so its widgets exist on
every page and their values persist while people move between pages. Pages
read the choice through :func:`selection`, never the raw keys (named in :mod:`.keys`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from . import resources as res
from .keys import ANNOTATOR, DATASET, RUN, SELECTION, SPLIT

DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Selection:
    dataset: str | None
    run_id: str | None
    annotator: str
    split: str | None

    @property
    def ready(self) -> bool:
        """A run with scored candidates is chosen."""
        return self.dataset is not None and self.run_id is not None


def _default_annotator() -> str:
    return os.environ.get("RRRA_ANNOTATOR") or os.environ.get("USER") or "reviewer"


def sidebar() -> Selection:
    """Draw the shared sidebar and return the current choice."""
    runs = res.all_runs()
    browsable = runs[runs["browsable"] & runs["dataset"].notna()]
    with st.sidebar:
        st.markdown("**Working on**")
        datasets = list(dict.fromkeys([*browsable["dataset"].tolist(), *res.DATASETS]))
        if st.session_state.get(DATASET) not in datasets:
            st.session_state.pop(DATASET, None)
        dataset = st.selectbox("Dataset", datasets, key=DATASET, help="Datasets with a scored run come first.")
        run_ids = browsable.loc[browsable["dataset"] == dataset, "run"].tolist()
        run_id = None
        if run_ids:
            if st.session_state.get(RUN) not in run_ids:
                st.session_state.pop(RUN, None)
            run_id = st.selectbox(
                "Run", run_ids, key=RUN, help="Runs whose adapter scored this dataset's candidates (newest first)."
            )
        else:
            st.caption("No scored run for this dataset yet.")
        if ANNOTATOR not in st.session_state:
            st.session_state[ANNOTATOR] = _default_annotator()
        annotator = st.text_input(
            "Annotator", key=ANNOTATOR, max_chars=64, help="Your name: every judgment is saved under it."
        ).strip()
        split = None
        if dataset is not None:
            options = res.splits(dataset)
            run_split = browsable.loc[browsable["run"] == run_id, "split"].tolist()
            if st.session_state.get(SPLIT) not in options:
                st.session_state.pop(SPLIT, None)
                if run_split and run_split[0] in options:
                    st.session_state[SPLIT] = run_split[0]
            split = (
                st.selectbox("Split", options, key=SPLIT, help="Which qrels split's queries and positives to show.")
                if options
                else None
            )
        if not annotator:
            st.warning("Type your name to save judgments.")
    return Selection(dataset=dataset, run_id=run_id, annotator=annotator, split=split)


def selection() -> Selection:
    """The sidebar's current choice (drawn by ``app.py`` on this rerun)."""
    sel = st.session_state.get(SELECTION)
    if isinstance(sel, Selection):
        return sel
    return Selection(None, None, _default_annotator(), None)


def require_run() -> Selection:
    """The sidebar's choice, or stop the page with a hint when no scored run is chosen."""
    sel = selection()
    if not sel.ready:
        st.info("Choose a dataset and a scored run in the sidebar (the Overview page can build the demo run).")
        st.stop()
    return sel


def remember(sel: Selection) -> None:
    st.session_state[SELECTION] = sel
