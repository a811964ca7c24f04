"""New project: a broken folder is refused in one line; a small BEIR folder becomes a scored run in the sidebar.

Saved data (issue 25): a taken dataset name is kept unless Replace is ticked, and a name is made ASCII or refused.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.common import keys
from pages.common.jobs_view import PROJECT_JOB
from rrra_core.data import dataset_folder, write_tevatron
from rrra_core.data.training_files import Passage, TrainingExample
from rrra_core.runtime.paths import datasets_dir
from tests.app.conftest import APP, wait_for_job

PAGE = "pages/data/new_project.py"


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def test_a_broken_folder_is_refused_with_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(dataset_folder("adi"), folder)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tno-such-doc\t1\n", encoding="utf-8")
    at = _open()
    at.text_input(key=keys.NP_FOLDER).set_value(str(folder))
    at.button(key=keys.NP_CHECK).click().run()
    assert not at.exception
    [error] = at.error
    message = error.value.replace("\\", "")  # shown Markdown-escaped
    assert "test.tsv:2: corpus-id 'no-such-doc' is not in the corpus" in message and "\n" not in message
    assert not [b for b in at.button if b.key == keys.NP_BUILD]


def test_builds_a_run_from_a_small_folder_in_the_background(tmp_path: Path, tiny_model_dir: Path) -> None:
    folder = tmp_path / "small"
    shutil.copytree(dataset_folder("adi"), folder)
    at = _open()
    at.text_input(key=keys.NP_FOLDER).set_value(str(folder))
    at.button(key=keys.NP_CHECK).click().run()
    assert not at.error and not at.exception
    assert [m.value for m in at.metric][:2] == ["82", "35"]
    assert at.dataframe[0].value["split"].tolist() == ["test"]
    at.radio(key=keys.NP_MODEL_KIND).set_value("folder").run()
    at.text_input(key=keys.NP_MODEL_FOLDER).set_value(str(tiny_model_dir))
    at.number_input(key=keys.NP_MAX_QUERIES).set_value(8)
    at.text_input(key=keys.NP_RUN_NAME).set_value("small-run").run()
    at.button(key=keys.NP_BUILD).click().run()
    assert not at.exception
    state = wait_for_job(PROJECT_JOB, stall_s=180)
    assert state.status == "done", state.error
    at.run()
    at.button(key=keys.NP_OPEN).click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key=keys.DATASET).value == str(folder.resolve())
    assert at.sidebar.selectbox(key=keys.RUN).value == "small-run"


def _training_file(tmp_path: Path) -> Path:
    pos, neg = Passage("d1", "relevant text", "T1"), Passage("d2", "other text")
    src = tmp_path / "train.jsonl"
    write_tevatron(src, [TrainingExample("q one", (pos,), (neg,), query_id="q1")])
    return src


def _check_training_file(at: AppTest, src: Path, name: str) -> AppTest:
    at.radio(key=keys.NP_SOURCE).set_value("training").run()
    at.text_input(key=keys.NP_TRAINING_FILE).set_value(str(src))
    at.text_input(key=keys.NP_NAME).set_value(name).run()
    return at


def test_a_taken_dataset_name_is_refused_until_replace_is_ticked_then_wholly_replaced(
    isolated_home: Path, tmp_path: Path
) -> None:
    old = datasets_dir() / "mine"
    (old / "qrels").mkdir(parents=True)
    (old / "corpus.jsonl").write_text('{"_id": "old", "text": "old doc"}\n', encoding="utf-8")
    (old / "queries.jsonl").write_text('{"_id": "oq", "text": "old query"}\n', encoding="utf-8")
    (old / "qrels" / "old.tsv").write_text("query-id\tcorpus-id\tscore\noq\told\t1\n", encoding="utf-8")
    at = _check_training_file(_open(), _training_file(tmp_path), "mine")
    replace = at.checkbox(key=keys.NP_REPLACE)
    assert replace.label == "Replace the existing dataset mine" and not replace.value
    at.button(key=keys.NP_CHECK).click().run()
    [error] = at.error
    message = error.value.replace("\\", "")  # shown Markdown-escaped
    assert "a dataset called 'mine' already exists" in message and "\n" not in message
    assert (old / "qrels" / "old.tsv").is_file() and "old doc" in (old / "corpus.jsonl").read_text()
    assert not [b for b in at.button if b.key == keys.NP_BUILD]
    at.checkbox(key=keys.NP_REPLACE).check().run()
    at.button(key=keys.NP_CHECK).click().run()
    assert not at.error and not at.exception
    assert [m.value for m in at.metric][:3] == ["2", "1", "1"]  # the new file's, no old split mixed in
    assert sorted(p.name for p in datasets_dir().iterdir()) == ["mine"]
    assert not (old / "qrels" / "old.tsv").exists() and "old doc" not in (old / "corpus.jsonl").read_text()


def test_a_non_ascii_dataset_name_is_saved_as_its_ascii_form_or_refused_saying_why(
    isolated_home: Path, tmp_path: Path
) -> None:
    src = _training_file(tmp_path)
    at = _check_training_file(_open(), src, "Café données")
    target = datasets_dir().resolve() / "Cafe-donnees"
    assert any(str(target) in c.value for c in at.caption)  # shown before anything is saved
    at.button(key=keys.NP_CHECK).click().run()
    assert not at.error and (target / "corpus.jsonl").is_file()
    _check_training_file(at, src, "数据").button(key=keys.NP_CHECK).click().run()
    [error] = at.error
    assert "the dataset name '数据' has no ASCII letter or digit" in error.value.replace("\\", "")
    assert sorted(p.name for p in datasets_dir().iterdir()) == ["Cafe-donnees"]


def test_an_unfinished_run_under_the_name_is_named_before_build(tmp_path: Path, isolated_home: Path) -> None:
    """Issue 25 item 3: the form said nothing of an unfinished run; the job then refused it after starting."""
    folder = tmp_path / "small"
    shutil.copytree(dataset_folder("adi"), folder)
    (isolated_home / "runs" / "half-made").mkdir(parents=True)
    (isolated_home / "runs" / "half-made" / "config.json").write_text("{}", encoding="utf-8")
    at = _open()
    at.text_input(key=keys.NP_FOLDER).set_value(str(folder))
    at.button(key=keys.NP_CHECK).click().run()
    at.text_input(key=keys.NP_RUN_NAME).set_value("half-made").run()
    assert not at.exception
    notes = [i.value.replace("\\", "") for i in at.info]
    assert any("half-made" in n and "did not finish" in n for n in notes), notes
