"""The sidebar (dataset, run, annotator, split) every page shares.

``app.py`` draws the sidebar before running the page, so its widgets exist on
every page and their values persist while people move between pages. Pages
read the choice through :func:`selection`, never the raw keys (named in :mod:`.keys`).
The run and the annotator's name also live in the URL (:mod:`.links`), so a
refresh, a new tab or a shared link keeps them. In team mode (:mod:`.auth`) the
annotator is the signed-in person instead, and the URL keeps only run and query.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import streamlit as st

from . import auth, links
from . import resources as res
from .keys import (
    ANNOTATOR,
    DATASET,
    LINK_QUERY,
    QUERY,
    RUN,
    RUN_CHOICE,
    SELECTION,
    SPLIT,
    SPLIT_FOR,
    URL_RESTORED,
)
from .run_headline import short_name
from .widgets import md_code

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
    """The name a new session starts with: the URL's, else ``RRRA_ANNOTATOR``, else none (the pages ask).

    Never ``$USER`` or a placeholder: on a shared server that is the account running
    the app, and every judgment would silently go under a name that is not the person's.
    """
    return links.read(links.ANNOTATOR) or os.environ.get("RRRA_ANNOTATOR", "").strip()


def _restore_from_url(browsable: Any) -> None:
    """On a session's first run, open the run and query its URL names (a link, a refresh, a new tab).

    Once per session only: afterwards the URL follows the person's choices, never the other way.
    """
    if st.session_state.get(URL_RESTORED):
        return
    st.session_state[URL_RESTORED] = True
    run_id = links.read(links.RUN)
    hit = browsable.loc[browsable["run"] == run_id, "dataset"].tolist()
    if hit:
        choose_run(hit[0], run_id)
    elif run_id:
        # The URL is anyone's to write: its value goes in a code span, never parsed as Markdown.
        st.warning(f"The link's run {md_code(run_id)} is not here (or not scored yet); showing another.", icon="🔗")
    query = links.read(links.QUERY)
    if query:
        # Marked as the link's: the Hard negatives page says so when the run did not score it.
        st.session_state[QUERY] = st.session_state[LINK_QUERY] = query


def _split_picker(dataset: str, run_id: str | None, run_split: str | None) -> str | None:
    """The split selectbox, set to the split ``run_id`` scored whenever the run changes.

    A run only has candidates for its own split's queries: left on another split, the
    pages show empty query texts or nothing at all. A person may still change it afterwards.
    """
    options = res.splits(dataset)
    follow = st.session_state.get(SPLIT_FOR) != (dataset, run_id)
    st.session_state[SPLIT_FOR] = (dataset, run_id)
    if not options:
        return None
    if follow or st.session_state.get(SPLIT) not in options:
        _hold(SPLIT, run_split if run_split in options else options[0])
    return st.selectbox("Split", options, key=SPLIT, help="Which qrels split's queries and positives to show.")


def _run_picker(run_ids: list[str]) -> str | None:
    """The run selectbox, held on the run people chose.

    The list is newest first and grows while jobs run; a selectbox left to
    itself would jump to the new first entry. The choice is kept under its own
    key and put back before the widget is drawn, so only a person (or the
    "Open" button of a finished job, through :func:`choose_run`) moves it.
    """
    if not run_ids:
        st.caption("No scored run for this dataset yet.")
        return None
    chosen = st.session_state.get(RUN_CHOICE)
    current = st.session_state.get(RUN)
    _hold(RUN, chosen if chosen in run_ids else current if current in run_ids else run_ids[0])
    run_id = st.selectbox(
        "Run",
        run_ids,
        key=RUN,
        on_change=_run_chosen,
        help="Runs whose adapter scored this dataset's candidates (newest first).",
    )
    st.session_state[RUN_CHOICE] = run_id
    return run_id


def _hold(key: str, value: str) -> None:
    """Set the selectbox ``key`` to ``value`` before it is drawn, so the browser shows what the pages use.

    Never clear the key to let the widget fall back to its first option: the key is the
    widget's identity, so the browser keeps the box and, told of no new value, goes on
    showing the old one (after a change of Dataset, the previous dataset's run) while
    the pages read the first option.
    """
    st.session_state[key] = value


def _run_chosen() -> None:
    # A person picked a run: record it before the rerun puts the kept choice back into the widget,
    # or the old choice would overwrite theirs.
    st.session_state[RUN_CHOICE] = st.session_state.get(RUN)


def choose_run(dataset: str, run_id: str) -> None:
    """Switch the sidebar to ``run_id`` of ``dataset`` on the next rerun (a person asked for it)."""
    st.session_state[DATASET] = dataset
    st.session_state[RUN_CHOICE] = run_id


def dataset_label(datasets: list[str]) -> Any:
    """How the Dataset box names each dataset: a folder by its last part, or by its path when two share that part."""
    names = [short_name(d) or d for d in datasets]
    shared = {n for n in names if names.count(n) > 1}
    labels = {d: (d if n in shared else n) for d, n in zip(datasets, names, strict=True)}
    return lambda d: labels.get(d, d)


def sidebar() -> Selection:
    """Draw the shared sidebar and return the current choice."""
    runs = res.all_runs()
    browsable = runs[runs["browsable"] & runs["dataset"].notna()]
    with st.sidebar:
        st.markdown("**Working on**")
        _restore_from_url(browsable)
        datasets = list(dict.fromkeys([*browsable["dataset"].tolist(), *res.DATASETS]))
        if st.session_state.get(DATASET) not in datasets:
            _hold(DATASET, datasets[0])
        dataset = st.selectbox(
            "Dataset",
            datasets,
            key=DATASET,
            format_func=dataset_label(datasets),
            help="Datasets with a scored run come first; a folder is shown by its name (its path when two share one).",
        )
        run_ids = browsable.loc[browsable["dataset"] == dataset, "run"].tolist()
        run_id = _run_picker(run_ids)
        if run_id is not None:
            lineage = browsable.loc[browsable["run"] == run_id, "lineage"].tolist()
            if lineage and isinstance(lineage[0], str):
                st.caption(lineage[0])
        signed_in = auth.identity()
        if signed_in is not None:
            # Team mode: the verified name, never one from the address or the environment.
            annotator = signed_in
            auth.signed_in_box(signed_in)
        else:
            if ANNOTATOR not in st.session_state:
                st.session_state[ANNOTATOR] = _default_annotator()
            annotator = st.text_input(
                "Annotator",
                key=ANNOTATOR,
                max_chars=64,
                help="Your name: every judgment is saved under it. It stays in the address (?annotator=…).",
            ).strip()
        split = None
        if dataset is not None:
            run_split = browsable.loc[browsable["run"] == run_id, "split"].tolist()
            split = _split_picker(dataset, run_id, run_split[0] if run_split else None)
        if not annotator:
            st.warning("Type your name to save judgments.")
        links.write(links.RUN, run_id)
        # In team mode the address keeps run and query only: a name there would only mislead.
        links.write(links.ANNOTATOR, annotator if signed_in is None else None)
    return Selection(dataset=dataset, run_id=run_id, annotator=annotator, split=split)


def selection() -> Selection:
    """The sidebar's current choice (drawn by ``app.py`` on this rerun)."""
    sel = st.session_state.get(SELECTION)
    if isinstance(sel, Selection):
        return sel
    if auth.team_mode():
        return Selection(None, None, auth.identity() or "", None)
    return Selection(None, None, os.environ.get("RRRA_ANNOTATOR", "").strip(), None)


def require_run() -> Selection:
    """The sidebar's choice, or stop the page with a hint when no scored run is chosen."""
    sel = selection()
    if not sel.ready:
        st.info("Choose a dataset and a scored run in the sidebar (the Overview page can build the demo run).")
        st.stop()
    return sel


def remember(sel: Selection) -> None:
    st.session_state[SELECTION] = sel
