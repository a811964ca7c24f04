"""What annotation tools take for granted (issue 16): exports as downloads, guidelines, a count of what is left."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import db
from pages.common import keys
from pages.common.exports_view import export_argv, export_bytes
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
STORE = "adi_copy"  # the store's name for the tiny run's dataset folder


def _app(page: str | None = None, annotator: str = "ana") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.sidebar.text_input(key=keys.ANNOTATOR).input(annotator).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _judge_some(store, tiny_run: TinyRun, n: int = 4) -> pd.DataFrame:  # noqa: ANN001
    preds = pd.read_parquet(tiny_run.run_dir / "predictions.parquet")
    rows = preds[preds["label"] == 0].head(n)
    with store() as s:
        db.ensure_dataset(s, str(tiny_run.dataset_dir))
        for i, r in enumerate(rows.itertuples()):
            label = "relevant" if i % 2 == 0 else "not_relevant"
            db.save_judgment(s, STORE, r.query_id, r.doc_id, label, "ana" if i < 3 else "bo")
    return rows


@pytest.mark.parametrize("fmt", ["beir", "trec", "negatives", "tevatron", "flag", "label-studio", "judgments"])
def test_a_download_is_the_file_the_cli_writes(tiny_run: TinyRun, store, tmp_path: Path, fmt: str) -> None:  # noqa: ANN001
    from db.cli import main as cli_main

    _judge_some(store, tiny_run)
    url = db.resolve_url(None)
    argv = export_argv(str(tiny_run.dataset_dir), "test", fmt, "ignored", "majority", "adi-tiny")
    out = tmp_path / f"cli.{fmt}"
    argv_cli = [str(out) if a == "ignored" else a for a in argv]
    assert cli_main(["--db", url, *argv_cli]) == 0
    assert export_bytes(url, argv) == out.read_bytes()


def test_the_overview_offers_the_export(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    _judge_some(store, tiny_run)
    at = _app()
    assert at.selectbox(key=keys.EXPORT_FORMAT).value == "beir"
    assert any(e.proto.label.startswith("Download corrected qrels") for e in at.get("download_button"))
    [stats] = [d.value for d in at.dataframe if "documents" in d.value.columns]
    assert len(stats) == 4 and "None" not in stats.astype(str).to_numpy().ravel().tolist()
    assert "" in stats.to_numpy().ravel().tolist()  # the splits some datasets lack


def test_guidelines_are_saved_with_the_dataset_and_shown_beside_the_queue(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    at = _app("pages/label/review.py")
    at.sidebar.text_area(key=keys.GUIDELINES_TEXT).set_value("**Relevant** = it answers the question.")
    at.sidebar.button(key=keys.GUIDELINES_SAVE).click().run()
    assert not at.exception
    with store() as s:
        row = db.get_guidelines(s, STORE)
        assert (row.text, row.updated_by) == ("**Relevant** = it answers the question.", "ana")
    again = _app("pages/label/review.py", annotator="bo")  # another session reads them from the store
    assert any("it answers the question" in h.proto.body for h in again.sidebar.get("html"))


def test_the_review_queue_counts_what_is_left(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    at = _app("pages/label/review.py")
    at.slider(key=keys.REVIEW_THRESHOLD).set_value(0.0).run()
    metrics = {m.label: m.value for m in at.metric}
    left, (judged, total) = (
        int(metrics["Left in the queue"].replace(",", "")),
        metrics["Judged / suspects"].split(" / "),
    )
    at.button(key=keys.review_label("not_relevant")).click().run()
    assert not at.exception
    after = {m.label: m.value for m in at.metric}
    assert int(after["Left in the queue"].replace(",", "")) == left - 1
    assert after["Judged / suspects"] == f"{int(judged) + 1} / {total}"


def test_bulk_labelling_saves_one_verdict_for_every_picked_candidate(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    at = _app("pages/label/browser.py")
    picker = at.multiselect(key=keys.BULK_PICK)
    picked = picker.options[:3]
    picker.set_value(picked).run()
    at.radio(key=keys.BULK_VERDICT).set_value("not_relevant").run()
    at.button(key=keys.BULK_APPLY).click().run()
    assert not at.exception
    with store() as s:
        saved = db.list_judgments(s, STORE, annotator="ana")
    assert len(saved) == len(picked) == 3
    assert {j.label for j in saved} == {"not_relevant"} and all(j.p_fn is not None for j in saved)
    assert at.multiselect(key=keys.BULK_PICK).value == []


def test_a_task_export_from_the_overview_sends_what_the_person_picks(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    """Issue 25 item 19: the Label Studio download held every candidate of the run; now a chosen share, 500 at most
    by default, through the CLI's own code."""

    from db.exports import TaskChoice

    _judge_some(store, tiny_run)
    at = _app()
    at.selectbox(key=keys.EXPORT_FORMAT).set_value("label-studio").run()
    assert (at.selectbox(key=keys.EXPORT_TASKS).value, at.number_input(key=keys.EXPORT_LIMIT).value) == ("queue", 500)
    at.selectbox(key=keys.EXPORT_TASKS).set_value("suspects").run()
    at.number_input(key=keys.EXPORT_LIMIT).set_value(3).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key=keys.EXPORT_THRESHOLD).value == 0.5
    assert any("--select suspects --limit 3 --threshold 0.5" in c.value for c in at.caption)
    choice = TaskChoice("suspects", threshold=0.5, limit=3)
    argv = export_argv(str(tiny_run.dataset_dir), "test", "label-studio", "out", "majority", "adi-tiny", choice)
    tasks = json.loads(export_bytes(db.resolve_url(None), argv))
    assert len(tasks) == 3 and all(t["data"]["p_fn_given_neg"] >= 0.5 for t in tasks)


def test_a_task_export_reads_the_runs_store_and_writes_the_whole_frames_bytes(
    tiny_run: TinyRun, store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Issue 27 item 7: the Overview's task export selects from the run's store, not every candidate as a dict, and
    writes the file the whole-frame path writes for the same predictions outside a run folder."""
    import shutil

    import db.cli
    from db.cli import main as cli_main
    from db.exports import TaskChoice

    _judge_some(store, tiny_run, n=6)
    loose = tmp_path / "loose" / "predictions.parquet"  # no config.json beside it: read whole
    loose.parent.mkdir()
    shutil.copyfile(tiny_run.run_dir / "predictions.parquet", loose)
    url = db.resolve_url(None)
    choices = [
        TaskChoice(),
        TaskChoice("queue", "uncertainty", limit=0),
        TaskChoice("queue", "random", 0.2, limit=9, include_judged=True),
        TaskChoice("suspects", threshold=0.3, limit=0),
        TaskChoice("judged", limit=0),
    ]
    for fmt, choice in itertools.product(("label-studio", "argilla"), choices):
        argv = export_argv(str(tiny_run.dataset_dir), "test", fmt, "out", "majority", "adi-tiny", choice)
        with monkeypatch.context() as m:
            m.setattr(db.cli, "_read_candidates", lambda path: pytest.fail(f"read every candidate of {path}"))
            from_store = export_bytes(url, argv)
        out = tmp_path / "whole.json"
        flags = [str(out) if a == "out" else a for a in argv]
        flags[flags.index("--predictions") + 1] = str(loose)
        assert cli_main(["--db", url, *flags]) == 0
        assert from_store == out.read_bytes(), (fmt, choice)
        assert len(json.loads(from_store) if fmt == "label-studio" else json.loads(from_store)["records"]) > 0
    assert (tiny_run.run_dir / "reader").is_dir() and not (loose.parent / "reader").exists()
