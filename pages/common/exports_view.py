"""Download the judgments from the app, in every format ``scripts/annotations.py export`` writes.

The bytes come from the CLI's own export code (``db.cli``'s parser and
handler, run in this process on a temporary file), so a file downloaded here is
the file the command line writes for the same dataset, split, format and
policy, byte for byte. The export runs when the button is pressed (Streamlit's
deferred download data), not on every rerun: a large dataset's export takes seconds.
A Label Studio or Argilla export sends out what the person picks (the review
queue's next N, suspects at a threshold, or the judged pairs), at most
:data:`db.exports.DEFAULT_TASK_LIMIT` unless they ask for more, chosen from the
run's store (:mod:`db.store_tasks`), so this process never holds every candidate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

import db
from db.cli import EXPORT_FORMATS
from db.exports import DEFAULT_TASK_LIMIT, SUSPECT_THRESHOLD, TASK_FORMATS, TASK_SELECTIONS, TaskChoice

from . import auth, keys
from . import resources as res
from .state import Selection

SUFFIXES = {"beir": "tsv", "trec": "txt", "negatives": "tsv", "label-studio": "json", "argilla": "json"}
FORMAT_NAMES = {
    "beir": "corrected qrels (BEIR TSV)",
    "trec": "corrected qrels (TREC)",
    "negatives": "confirmed negatives (TSV)",
    "tevatron": "training file (Tevatron JSONL)",
    "flag": "training file (FlagEmbedding JSONL)",
    "label-studio": "review tasks (Label Studio JSON)",
    "argilla": "review tasks (Argilla JSON)",
    "judgments": "every judgment (JSONL, re-importable)",
}
POLICIES = ("majority", "any_relevant")


TASK_NAMES = {
    "queue": "the review queue's next N",
    "suspects": "suspects at a P(FN|neg) threshold, likeliest first",
    "judged": "the pairs people judged",
}


def task_argv(choice: TaskChoice) -> list[str]:
    """The ``export`` flags that pick a task export's candidates (``--select``, ``--limit``, ``--threshold``)."""
    argv = ["--select", choice.select, "--limit", str(choice.limit or 0)]
    if choice.threshold is not None and choice.select != "judged":
        argv += ["--threshold", f"{choice.threshold:g}"]
    return argv


def export_argv(
    dataset: str,
    split: str,
    fmt: str,
    out: str,
    policy: str = "majority",
    run_id: str | None = None,
    tasks: TaskChoice | None = None,
) -> list:
    """The ``annotations.py`` arguments (after ``--db``) for one export; the run's predictions feed task formats.

    ``tasks`` picks which candidates a task format sends out (the CLI's defaults when ``None``).
    """
    argv = ["export", "--dataset", dataset, "--split", split, "--format", fmt, "--out", out, "--policy", policy]
    if fmt in TASK_FORMATS and run_id is not None:
        predictions = res.get_run(run_id).file("predictions.parquet")
        argv += ["--predictions", str(predictions), "--run-id", run_id]
    if fmt in TASK_FORMATS and tasks is not None:
        argv += task_argv(tasks)
    return argv


def _task_choice() -> TaskChoice:
    """Which candidates a Label Studio or Argilla export sends out: chosen here, checked by ``TaskChoice``."""
    with st.container(horizontal=True, vertical_alignment="bottom"):
        select = st.selectbox("Tasks", TASK_SELECTIONS, format_func=TASK_NAMES.get, key=keys.EXPORT_TASKS)
        limit = st.number_input(
            "At most (0 for all)",
            min_value=0,
            value=DEFAULT_TASK_LIMIT,
            step=100,
            key=keys.EXPORT_LIMIT,
            help="A run's whole pool is tens of thousands of tasks, far more than anyone uploads to review.",
        )
        threshold = None
        if select == "suspects":
            threshold = st.slider(
                "P(FN|neg) at least",
                0.0,
                1.0,
                float(st.session_state.get(keys.THRESHOLD, SUSPECT_THRESHOLD)),
                0.05,
                key=keys.EXPORT_THRESHOLD,
            )
    return TaskChoice(select=select, threshold=threshold, limit=int(limit))


def export_bytes(url: str, argv: list[str]) -> bytes:
    """What ``annotations.py --db URL <argv>`` writes to its ``--out`` file (``--out`` is replaced by a temp file)."""
    # db.cli's handler, not its main: main sets up the CLI's logging, which imports transformers.
    from db.cli import _export, build_parser

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "export")
        argv = [out if i > 0 and argv[i - 1] == "--out" else a for i, a in enumerate(argv)]
        args = build_parser().parse_args(["--db", url, *argv])
        engine = db.init_db(args.db)
        try:
            with db.session_factory(engine)() as session:
                _export(session, args)
        finally:
            engine.dispose()
        return Path(out).read_bytes()


def export_section(sel: Selection) -> None:
    """A format and merge policy, and a download button that exports the dataset's judgments in them."""
    # Team mode: admins only; the download is not even registered for anyone else.
    if sel.dataset is None or sel.split is None or not auth.can("export"):
        return
    with st.expander("Export the judgments"):
        with st.container(horizontal=True, vertical_alignment="bottom"):
            fmt = st.selectbox("Format", EXPORT_FORMATS, format_func=FORMAT_NAMES.get, key=keys.EXPORT_FORMAT)
            policy = st.selectbox(
                "Merge policy",
                POLICIES,
                key=keys.EXPORT_POLICY,
                help="How several annotators' verdicts on one pair become one label (as --policy).",
            )
        tasks = _task_choice() if fmt in TASK_FORMATS else None
        name = res.store_name(sel.dataset)
        suffix = SUFFIXES.get(fmt, "jsonl")
        argv = export_argv(sel.dataset, sel.split, fmt, "out", policy, sel.run_id, tasks)
        st.download_button(
            f"Download {FORMAT_NAMES[fmt]}",
            lambda: export_bytes(res.db_url(), argv),
            file_name=f"{name}-{sel.split}-{fmt}.{suffix}",
            key=keys.EXPORT_DOWNLOAD,
            icon=":material/download:",
        )
        flags = (" ".join(task_argv(tasks)) + " --predictions ...") if tasks is not None else f"--policy {policy}"
        st.caption(
            "The same file as `scripts/annotations.py export --dataset ... "
            f"--split {sel.split} --format {fmt} {flags}`."
        )
