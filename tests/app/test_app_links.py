"""The app as a new user meets it (issue 16): the split follows the run, the name and the query live in the URL.

Each test builds its runs from the session's tiny ADI run (copied, its config
pointed at a dataset variant), so the numbers are real and nothing is mocked.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import db
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BROWSER = "pages/label/browser.py"


def _split_dataset(tiny: TinyRun, dst: Path) -> Path:
    """The tiny ADI with a ``train`` split holding every query the run scored, and a ``test`` split holding none.

    The ``test`` split's one query is new, so a run of the train split has nothing to show there.
    """
    shutil.copytree(tiny.dataset_dir, dst)
    header, *rows = (dst / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    (dst / "qrels" / "train.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    doc = rows[0].split("\t")[1]
    (dst / "qrels" / "test.tsv").write_text(f"{header}\nextra\t{doc}\t1\n", encoding="utf-8")
    with gzip.open(dst / "queries.jsonl.gz", "at", encoding="utf-8") as fh:
        fh.write(json.dumps({"_id": "extra", "text": "a query only the test split has"}) + "\n")
    return dst


def _add_run(tiny: TinyRun, home: Path, run_id: str, dataset: Path, split: str, mtime: float) -> None:
    """A copy of the tiny run under ``run_id``, its config naming ``dataset`` and ``split``; ``mtime`` orders runs."""
    dst = home / "runs" / run_id
    shutil.copytree(tiny.run_dir, dst)
    cfg_path = dst / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["data"] = {**cfg["data"], "dataset": str(dataset), "train_split": split}
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    for f in dst.iterdir():
        os.utime(f, (mtime, mtime))


@pytest.fixture()
def two_runs(tiny_run_session: TinyRun, isolated_home: Path, tmp_path: Path) -> Path:
    """``adi-test`` (newest, the sidebar's default) scored the test split; ``adi-train`` scored train."""
    dataset = _split_dataset(tiny_run_session, tmp_path / "adi_splits")
    _add_run(tiny_run_session, isolated_home, "adi-train", dataset, "train", 1_000_000)
    _add_run(tiny_run_session, isolated_home, "adi-test", dataset, "test", 2_000_000)
    return dataset


def _ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_split_follows_the_chosen_run_and_a_person_may_change_it(two_runs, monkeypatch) -> None:
    monkeypatch.setenv("RRRA_ANNOTATOR", "ana")
    at = _ok(AppTest.from_file(APP, default_timeout=60).run())
    assert at.sidebar.selectbox(key="sb_run").value == "adi-test"
    assert at.sidebar.selectbox(key="sb_split").value == "test"
    _ok(at.sidebar.selectbox(key="sb_run").select("adi-train").run())
    assert at.sidebar.selectbox(key="sb_split").value == "train"  # was left on test before issue 16
    suspects = at.dataframe(key="top_suspects").value
    assert len(suspects) > 0 and (suspects["query"].str.len() > 0).all()
    # The person's own choice stands until the run changes again.
    _ok(at.sidebar.selectbox(key="sb_split").select("test").run())
    _ok(at.run())
    assert at.sidebar.selectbox(key="sb_split").value == "test"
    # A split without the run's queries: the Hard negatives page offers the run's split in one click.
    _ok(at.switch_page(BROWSER).run())
    _ok(at.button(key="browser_show_run_split").click().run())
    assert at.sidebar.selectbox(key="sb_split").value == "train"
    assert at.session_state["browser_query"]


def test_a_deep_link_opens_its_run_and_query(two_runs) -> None:
    from rrra_core.data import load_dataset

    dataset = two_runs
    query = list(load_dataset(str(dataset), "train").qrels)[5]
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "adi-train"  # not the sidebar's default (adi-test is newer)
    at.query_params["query"] = query
    _ok(at.switch_page(BROWSER).run())
    assert at.sidebar.selectbox(key="sb_run").value == "adi-train"
    assert at.sidebar.selectbox(key="sb_split").value == "train"
    assert at.session_state["browser_query"] == query
    assert at.selectbox(key="_browser_query_widget").value == query
    assert at.query_params["run"] == "adi-train" and at.query_params["query"] == query
    # Moving on puts the new query in the address, ready to share.
    _ok(at.button(key="q_next").click().run())
    assert at.query_params["query"] == at.session_state["browser_query"] != query
    link = next(c.value for c in at.code if "query=" in c.value)
    assert link.endswith(f"/browser?run=adi-train&query={at.session_state['browser_query']}")


def test_a_link_to_a_missing_run_says_so_and_opens_another(two_runs) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "gone"
    _ok(at.run())
    assert at.sidebar.selectbox(key="sb_run").value == "adi-test"
    assert any("gone" in w.value for w in at.sidebar.warning)
    assert at.query_params["run"] == "adi-test"


def test_the_annotator_comes_back_from_the_url_in_a_new_session(tiny_run: TinyRun, store, monkeypatch) -> None:
    monkeypatch.delenv("RRRA_ANNOTATOR", raising=False)
    first = AppTest.from_file(APP, default_timeout=60)
    _ok(first.switch_page(BROWSER).run())
    first.sidebar.text_input(key="sb_annotator").input("alice").run()
    assert first.query_params["annotator"] == "alice"
    # A refresh or a new tab: a fresh session with only the address.
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params.update(first.query_params)
    _ok(again.switch_page(BROWSER).run())
    assert again.sidebar.text_input(key="sb_annotator").value == "alice"
    assert any("Labelling as **`alice`**" in m.value for m in again.markdown)
    _ok(again.button(key="focus_not_relevant").click().run())
    with store() as s:
        assert [j.annotator for j in db.list_judgments(s, "adi_copy")] == ["alice"]


def test_a_new_session_without_a_name_is_asked_for_one(tiny_run: TinyRun, store, monkeypatch) -> None:
    monkeypatch.delenv("RRRA_ANNOTATOR", raising=False)
    monkeypatch.setenv("USER", "server-account")  # never used as a name: it is who runs the app
    at = AppTest.from_file(APP, default_timeout=60)
    _ok(at.switch_page("pages/label/review.py").run())
    assert at.sidebar.text_input(key="sb_annotator").value == ""
    assert any("Who is labelling?" in w.value for w in at.warning)
    _ok(at.text_input(key="annotator_prompt").input("bo").run())
    assert at.sidebar.text_input(key="sb_annotator").value == "bo"
    assert any("Labelling as **`bo`**" in m.value for m in at.markdown)
    assert at.query_params["annotator"] == "bo"
    # The Hard negatives page refuses to save without a name and asks for one.
    fresh = AppTest.from_file(APP, default_timeout=60)
    _ok(fresh.switch_page(BROWSER).run())
    assert any("Who is labelling?" in w.value for w in fresh.warning)
    _ok(fresh.button(key="focus_relevant").click().run())
    assert any("Type your name" in t.value for t in fresh.toast)
    assert fresh.session_state["browser_focus"] == 0  # nothing saved, so the focus stays
    with store() as s:
        assert db.list_judgments(s, "adi_copy") == []


@pytest.mark.parametrize("query", ["extra", "no-such-query"])
def test_a_link_to_a_query_the_run_lacks_opens_the_picker_with_a_notice(two_runs, query: str) -> None:
    """Issue 25 item 11: a link's unknown query, or one of another split ("extra"), silently opened the first query."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({"run": "adi-train", "query": query})
    _ok(at.switch_page(BROWSER).run())
    assert any(query in w.value and "adi-train" in w.value for w in at.warning)
    assert at.selectbox(key="_browser_query_widget").value is None  # no query is open
    assert not [b for b in at.button if b.key == "focus_relevant"]  # so no candidates to label
    # Choosing one (or Next, from no query: the first) opens it and clears the notice.
    picker = at.selectbox(key="_browser_query_widget")
    ids = [o.split(" · ")[0] for o in picker.options]
    if query == "extra":
        chosen = ids[3]
        _ok(picker.select(chosen).run())
    else:
        chosen = ids[0]
        _ok(at.button(key="q_next").click().run())
    assert at.session_state["browser_query"] == at.query_params["query"] == chosen
    assert not any(query in w.value for w in at.warning)
    assert [b for b in at.button if b.key == "focus_relevant"]
