"""New project: a broken folder is refused in one line; a small BEIR folder becomes a scored run in the sidebar."""

from __future__ import annotations

import shutil
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.common import keys
from pages.common.jobs_view import PROJECT_JOB
from rrra_core.data import dataset_folder
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
