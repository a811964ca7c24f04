"""The Review queue page on damaged files: one line naming the file instead of a traceback, and a damaged queue
version gives way to the previous one (issue 25, items 5 and 9)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from pages.common import keys
from rrra_core.review.versions import SCORES_FILE, review_dir, write_version
from tests.app.conftest import APP, TinyRun
from tests.db.test_db_cli import write_damaged_store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REVIEW = "pages/label/review.py"


def _review_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(REVIEW).run()
    return at


def _plain(markdown: str) -> str:
    return markdown.replace("\\", "")  # the page escapes Markdown in file names and messages


def truncate(path: Path) -> None:
    """Cut a file in half, as a full disk or a copy cut short leaves it."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _negatives(run: TinyRun) -> pd.DataFrame:
    preds = pd.read_parquet(run.run_dir / "predictions.parquet")
    return preds[preds["label"] == 0][["query_id", "doc_id"]].astype(str).reset_index(drop=True)


def _version(run: TinyRun, first: tuple[str, str]) -> None:
    """A queue version that puts ``first`` at the top of the learnt order (and learnt from no verdicts)."""
    scores = _negatives(run).assign(score=0.0)
    scores.loc[(scores["query_id"] == first[0]) & (scores["doc_id"] == first[1]), "score"] = 1.0
    empty = pd.DataFrame({"query_id": [], "doc_id": [], "verdict": []}).astype({"verdict": bool})
    write_version(review_dir(run.run_dir), {"n_verdicts": 0, "n_judged": 0, "note": "test"}, scores, empty)


def test_a_damaged_predictions_file_is_named_in_one_line(tiny_run: TinyRun) -> None:
    truncate(tiny_run.run_dir / "predictions.parquet")
    at = _review_page()
    assert not at.exception, [e.value for e in at.exception]
    errors = [_plain(e.value) for e in at.error]
    assert len(errors) == 1 and "predictions.parquet: damaged" in errors[0] and "\n" not in errors[0], errors


@pytest.mark.parametrize("page", ["pages/label/overview.py", "pages/label/browser.py"])
def test_every_page_names_a_damaged_predictions_file_in_one_line(tiny_run: TinyRun, page: str) -> None:
    """The app's one guard (app.py): a page that meets a damaged run file shows its line, not a traceback."""
    truncate(tiny_run.run_dir / "predictions.parquet")
    at = AppTest.from_file(APP, default_timeout=60)
    at.switch_page(page).run()
    assert not at.exception, [e.value.splitlines()[0] for e in at.exception]
    errors = [_plain(e.value) for e in at.error]
    assert any("predictions.parquet: damaged" in e and "\n" not in e for e in errors), errors


def test_a_damaged_queue_version_gives_way_to_the_previous_one(tiny_run: TinyRun) -> None:
    negatives = _negatives(tiny_run)
    older, newer = tuple(negatives.iloc[-1]), tuple(negatives.iloc[-2])
    _version(tiny_run, older)
    _version(tiny_run, newer)
    damaged = review_dir(tiny_run.run_dir) / "v0002" / SCORES_FILE
    truncate(damaged)
    at = _review_page()
    at.slider(key="_review_threshold").set_value(0.0).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state[keys.REVIEW_CURRENT] == (tiny_run.run_dir.name, *older, "v0001")
    warnings = [_plain(w.value) for w in at.warning]
    assert any(str(damaged) in w and "v0001" in w for w in warnings), warnings
    assert any("Ordered by model v0001" in c.value for c in at.caption)


def test_a_damaged_store_is_one_line_with_the_way_to_recover(tiny_run: TinyRun, isolated_home: Path) -> None:
    store = isolated_home / ".rrra" / "annotations.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    write_damaged_store(store)
    at = _review_page()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "is damaged" in errors[0] and ".recover" in errors[0], errors
