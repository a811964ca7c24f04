"""New project: bring your own data, check it, and build its first scored run in the background.

The data is a BEIR folder on this machine, a Tevatron or FlagEmbedding
training file (converted to a BEIR folder under ``<home>/datasets/``), or small
files uploaded here (saved there too, only once they pass the check, and never
over an existing dataset unless Replace is ticked: ``rrra_core.data.uploads``).
The check runs the loaders, so a bad file is named in one line with its line
number; then the page shows what it found and starts ``scripts/new_project.py`` as a background job, followed
like the demo build. The page never encodes or trains itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.common import jobs_view, keys
from pages.common.state import choose_run
from pages.common.widgets import md_code, md_escape, show_text
from rrra_core.data.summary import DatasetSummary, summarize_dataset
from rrra_core.data.uploads import (
    dataset_target,
    save_training_file,
    save_uploads,
    training_file_name,
)
from rrra_core.runtime import jobs
from rrra_core.runtime.errors import UserError
from rrra_core.runtime.paths import runs_dir
from rrra_core.workflows.project import ProjectConfig, project_run_id

SOURCES = {
    "folder": "A BEIR folder on this machine",
    "training": "A Tevatron or FlagEmbedding JSONL file on this machine",
    "upload": "Upload small files",
}
MINILM = "minilm"


def _safe_name(text: str) -> str:
    # A run folder name under <home>/runs: never a path that leaves it.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")


def _checked_source(source: str) -> tuple[Path, DatasetSummary]:
    """The chosen source's BEIR folder and its checked summary; ``UserError`` if unusable.

    Uploads and training files are saved under ``<home>/datasets/`` by the core,
    which checks them in a staging folder and moves them in only if they pass.
    """
    name = str(st.session_state.get(keys.NP_NAME) or "")
    replace = bool(st.session_state.get(keys.NP_REPLACE))
    if source == "folder":
        text = str(st.session_state.get(keys.NP_FOLDER) or "").strip()
        if not text:
            raise UserError("type the path of a BEIR folder")
        folder = Path(text).expanduser().resolve()
        return folder, summarize_dataset(folder)
    if source == "training":
        path = str(st.session_state.get(keys.NP_TRAINING_FILE) or "").strip()
        summary = save_training_file(path, name, replace=replace)
    else:
        files = st.session_state.get(keys.NP_UPLOAD) or []
        if not files:
            raise UserError("choose the files to upload")
        summary = save_uploads([(f.name, f.getvalue()) for f in files], name, replace=replace)
    return summary.folder, summary


def _check() -> None:
    """The Check button: resolve the source and summarise it, keeping the summary or the one-line error."""
    st.session_state.pop(keys.NP_CHECKED, None)
    st.session_state.pop(keys.NP_ERROR, None)
    try:
        folder, summary = _checked_source(str(st.session_state.get(keys.NP_SOURCE)))
    except (UserError, OSError) as err:
        st.session_state[keys.NP_ERROR] = str(err)
        return
    st.session_state.pop(keys.NP_REPLACE, None)  # done: replacing again takes a new tick
    st.session_state[keys.NP_CHECKED] = (str(folder), summary)
    st.session_state.pop(keys.NP_SPLIT, None)
    st.session_state[keys.NP_RUN_NAME] = project_run_id(ProjectConfig(dataset=str(folder)))


def _forget_replace() -> None:
    # A Replace tick is for the name it was given under, never a name typed after.
    st.session_state.pop(keys.NP_REPLACE, None)


def _save_target(source: str) -> None:
    """Where the data will be saved (the typed name made ASCII), and a Replace choice if that dataset exists."""
    name = str(st.session_state.get(keys.NP_NAME) or "")
    path = str(st.session_state.get(keys.NP_TRAINING_FILE) or "").strip()
    if not name.strip() and source == "training" and path:
        name = training_file_name(path)
    try:
        target = dataset_target(name)
    except UserError:
        return  # Check says why
    st.caption(f"Saved as {md_code(str(target))}")
    if target.exists():
        st.checkbox(
            f"Replace the existing dataset {target.name}",
            key=keys.NP_REPLACE,
            help="The new files are checked first; if they pass, the whole folder is replaced (no old file "
            "stays). Runs built from the old files keep their numbers but read the new files.",
        )


def _source_inputs(source: str) -> None:
    if source == "folder":
        st.text_input(
            "BEIR folder",
            key=keys.NP_FOLDER,
            placeholder="/data/my-collection",
            help="corpus.jsonl[.gz] (_id, title, text), queries.jsonl[.gz] (_id, text), qrels/<split>.tsv "
            "(query-id, corpus-id, score)",
        )
        return
    if source == "training":
        st.text_input(
            "Training file", key=keys.NP_TRAINING_FILE, placeholder="/data/train.jsonl", on_change=_forget_replace
        )
    else:
        st.file_uploader(
            "corpus.jsonl, queries.jsonl and qrels/<split>.tsv files, or one training JSONL file",
            type=["jsonl", "gz", "tsv"],
            accept_multiple_files=True,
            key=keys.NP_UPLOAD,
        )
    st.text_input(
        "Dataset name",
        key=keys.NP_NAME,
        max_chars=80,
        help="The converted or uploaded data is saved as a BEIR folder in <home>/datasets/<name>, the name "
        "made ASCII (accents dropped, other characters become '-').",
        on_change=_forget_replace,
    )
    _save_target(source)


def _show_summary(folder: str, summary: DatasetSummary) -> None:
    st.markdown(f"**Found** in {md_code(folder)}")
    c = st.columns(3)
    c[0].metric("Documents", f"{summary.documents:,}")
    c[1].metric("Queries", f"{summary.queries:,}")
    c[2].metric("Splits", len(summary.splits))
    table = pd.DataFrame(
        [{"split": s, "judged queries": v.queries, "positive pairs": v.positives} for s, v in summary.splits.items()]
    )
    st.dataframe(table, hide_index=True)
    for note in summary.notes:
        st.caption(md_escape(note))


def _build_form(folder: str, summary: DatasetSummary) -> None:
    """Encoder, training split, size and run name; Build starts the background job."""
    kind = st.radio(
        "Encoder",
        [MINILM, "folder"],
        format_func={MINILM: "all-MiniLM-L6-v2 (bundled)", "folder": "A local model folder"}.get,
        key=keys.NP_MODEL_KIND,
        horizontal=True,
    )
    model = MINILM
    if kind == "folder":
        model = st.text_input(
            "Model folder", key=keys.NP_MODEL_FOLDER, help="A Hugging Face or sentence-transformers folder."
        )
    splits = list(summary.splits)
    split = st.selectbox(
        "Training split", splits, index=splits.index("train") if "train" in splits else 0, key=keys.NP_SPLIT
    )
    n_split = summary.splits[split].queries
    max_queries = st.number_input(
        "Training queries",
        min_value=1,
        max_value=max(n_split, 1),
        value=min(800, n_split) or 1,
        key=keys.NP_MAX_QUERIES,
        help="A random sample of the split's judged queries: fewer build faster.",
    )
    run_id = _safe_name(st.text_input("Run name", key=keys.NP_RUN_NAME, max_chars=80))
    problem = None
    if kind == "folder" and not Path(str(model)).expanduser().is_dir():
        problem = "Type the path of a local model folder."
    elif not run_id:
        problem = "Name the run."
    elif (runs_dir() / run_id / "predictions.parquet").is_file():
        problem = f"A run called {md_code(run_id)} already exists: choose another name."
    if problem:
        st.warning(problem)
    elif (runs_dir() / run_id).exists():
        # An unfinished run under this name: the build resumes it only with the same settings, else refuses.
        st.info(
            f"A build of {md_code(run_id)} was started and did not finish: Build resumes it if the settings are "
            "the same, and otherwise refuses; choose another name to start afresh."
        )
    if st.button("Build the run", type="primary", key=keys.NP_BUILD, disabled=problem is not None):
        model = model if kind == MINILM else str(Path(str(model)).expanduser().resolve())
        jobs_view.start_project(folder, model, split, int(max_queries), run_id)
        st.rerun()


def _job_panel() -> bool:
    """The latest project build: its progress while it runs, then Open or why it failed; whether one runs."""
    state = jobs.job_state(jobs_view.PROJECT_JOB)
    if state is None:
        return False
    run_id, dataset = str(state.meta.get("run")), str(state.meta.get("dataset"))
    if state.active:
        jobs_view.follow_build(jobs_view.PROJECT_JOB, run_id, f"run {run_id}", keys.NP_CANCEL)
        return True
    if state.status == "done":
        st.success(f"Run {md_code(run_id)} is ready: it is in the sidebar under its dataset.")
        # The sidebar's keys can only move in a callback, before its widgets are drawn.
        if st.button(
            f"Open {run_id} for review", key=keys.NP_OPEN, type="primary", on_click=choose_run, args=(dataset, run_id)
        ):
            st.switch_page("pages/label/overview.py")
    elif state.status in ("failed", "lost", "cancelled"):
        st.error(f"The last build of {md_code(run_id)} {state.status}: {md_escape(state.error or 'no message')}")
        with st.expander("Build log"):
            show_text(jobs.log_tail(jobs_view.PROJECT_JOB, 40))
    return False


st.title("New project")
st.caption(
    "Bring your own collection: the bundled MiniLM (or your encoder) retrieves each training query's top "
    "candidates, the RRRA adapter is trained on them and every candidate is scored, in the background."
)
if not _job_panel():
    source = st.radio("Where is the data?", list(SOURCES), format_func=SOURCES.get, key=keys.NP_SOURCE)
    _source_inputs(source)
    st.button("Check the data", key=keys.NP_CHECK, on_click=_check)
    if st.session_state.get(keys.NP_ERROR):
        st.error(md_escape(st.session_state[keys.NP_ERROR]))
    checked = st.session_state.get(keys.NP_CHECKED)
    if checked is not None:
        _show_summary(*checked)
        _build_form(*checked)
