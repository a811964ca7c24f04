"""A new user's path in a real browser (issue 16), with a screenshot of each page under ``test-artifacts/``.

1. Fresh home: build the demo from the Overview; the sidebar lands on the split the demo scored.
2. The labelling page asks who is labelling; three candidates labelled by keyboard, the focus moving on.
3. A refresh keeps the name (it is in the address).
4. A second annotator, opened from a link, disagrees on one pair; the Disagreements page lists it
   with both names, and an adjudication settles it.
5. The judgments export from the Overview as the CLI writes them.
6. Document text never becomes a link on any page visited.

The second test builds a run from a small BEIR folder through Train › New project, after an upload
whose file names try to leave the datasets folder is refused (issue 25).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import db
from rrra_core.runtime import jobs
from tests.app.conftest import wait_for_job
from tests.app.e2e import chromium, css, idle, open_page, require_browser, screenshot, streamlit_app, wait_for

ALICE, BOB = "alice", "bob"
NAV_LINK = '[data-testid="stSidebarNavLink"]'
RADIO_LABEL = '[data-testid="stRadio"] label'


def _judgments(dataset: str, annotator: str | None = None) -> list[tuple[str, str, str, str]]:
    with db.session_factory(db.init_db())() as s:
        return [
            (j.query_id, j.doc_id, j.label, j.annotator) for j in db.list_judgments(s, dataset, annotator=annotator)
        ]


def _no_links_to_documents(driver) -> None:
    """Document text is data: nothing in it may become a link (bare addresses included)."""
    assert not css(driver, 'a[href*="evil.example"]')
    assert driver.execute_script("return window.__pwned === undefined")


def _press(driver, key: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    # The shortcut goes to the page, not a text field: leave any field (a click could land on the sticky header).
    driver.execute_script("if (document.activeElement) { document.activeElement.blur(); } window.scrollTo(0, 0);")
    ActionChains(driver).send_keys(key).perform()


def _sidebar_value(driver, label: str) -> str:
    """The value a sidebar selectbox shows: its combobox input's value, or the text of its control."""
    for box in css(driver, '[data-testid="stSidebar"] [data-testid="stSelectbox"]'):
        if not box.text.strip().startswith(label):
            continue
        for inp in box.find_elements("css selector", "input"):
            if inp.get_attribute("value"):
                return inp.get_attribute("value").strip()
        control = box.find_elements("css selector", '[data-baseweb="select"]')
        return control[0].get_attribute("textContent").strip() if control else ""
    return ""


def _open_overview(driver) -> None:
    link = wait_for(
        driver,
        lambda d: next(
            (a for a in css(d, '[data-testid="stSidebarNavLink"]') if a.text.strip().endswith("Overview")), None
        ),
        what="the Overview link",
    )
    link.click()
    wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
    idle(driver)


def _build_demo(driver) -> None:
    button = wait_for(
        driver, lambda d: next((b for b in css(d, "button") if b.text == "Build the demo run"), None), what="Build"
    )
    button.click()
    wait_for(driver, lambda d: css(d, '[data-testid="stProgress"]'), what="the build's progress bar")
    screenshot(driver, "new_user_01_demo_building.png")
    # Wait on the build's progress, not a deadline (a loaded machine is slow, not stuck).
    state = wait_for_job("demo-build", every_s=3.0)
    assert state.status == "done", jobs.log_tail("demo-build", 30)


@pytest.mark.slow
def test_a_new_users_path_from_demo_to_settled_disagreement_and_export(isolated_home: Path, tmp_path: Path) -> None:
    require_browser()
    env = {"RRRA_HOME": str(isolated_home), "HF_HUB_OFFLINE": "1", "RRRA_ANNOTATOR": ""}
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with streamlit_app(env) as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
        _build_demo(driver)
        wait_for(driver, lambda d: _sidebar_value(d, "Run") == "demo-squad", timeout=120, what="the demo run")
        assert _sidebar_value(driver, "Split") == "train"  # the split the demo scored, not the session's old one
        idle(driver)
        screenshot(driver, "new_user_02_overview.png")
        _no_links_to_documents(driver)

        # 2. No name yet: the labelling page asks, and the name goes into the address.
        open_page(driver, "Hard negatives")
        idle(driver)
        ask = wait_for(driver, lambda d: next(iter(css(d, 'input[aria-label="Your name"]')), None), what="the ask")
        from selenium.webdriver.common.keys import Keys

        ask.send_keys(ALICE, Keys.ENTER)
        wait_for(driver, lambda d: f"annotator={ALICE}" in d.current_url, what="the name in the address")
        idle(driver)
        for key in ("1", "2", "2"):  # relevant, not relevant, not relevant: each moves the focus on
            before = len(_judgments("squad", ALICE))
            _press(driver, key)
            wait_for(driver, lambda d, n=before: len(_judgments("squad", ALICE)) == n + 1, what="the judgment")
            idle(driver)
        saved = _judgments("squad", ALICE)
        assert len({(q, d) for q, d, _, _ in saved}) == 3  # three different candidates: the focus advanced
        query = saved[0][0]
        first_doc = next(d for q, d, label, _ in saved if label == "relevant")
        screenshot(driver, "new_user_03_hard_negatives.png")
        _no_links_to_documents(driver)

        # 3. A refresh keeps the name.
        driver.refresh()
        wait_for(
            driver,
            lambda d: any(i.get_attribute("value") == ALICE for i in css(d, 'input[aria-label="Annotator"]')),
            what="the name after a refresh",
        )

        # 4. Bob opens the same query from a link and says the first pair is not relevant.
        driver.get(f"{url}/browser?run=demo-squad&query={query}&annotator={BOB}")
        wait_for(
            driver,
            lambda d: any(i.get_attribute("value") == BOB for i in css(d, 'input[aria-label="Annotator"]')),
            what="bob's session",
        )
        idle(driver)
        with db.session_factory(db.init_db())() as s:  # bob's focus is on the first candidate: judge alice's pair
            before = len(db.list_judgments(s, "squad", annotator=BOB))
        _press(driver, "2")
        wait_for(driver, lambda d: len(_judgments("squad", BOB)) == before + 1, what="bob's judgment")
        bob = _judgments("squad", BOB)
        if (bob[0][0], bob[0][1]) != (query, first_doc):  # the focused row was another pair: judge alice's too
            with db.session_factory(db.init_db())() as s:
                db.save_judgment(s, "squad", query, first_doc, "not_relevant", BOB)
        open_page(driver, "Disagreements")
        idle(driver)
        wait_for(
            driver,
            lambda d: all(x in d.find_element("css selector", "body").text for x in (ALICE, BOB, first_doc)),
            what="the disagreement with both names",
        )
        screenshot(driver, "new_user_04_disagreements.png")
        _no_links_to_documents(driver)
        settle = wait_for(
            driver, lambda d: next((b for b in css(d, "button") if b.text == "Relevant"), None), what="settle"
        )
        settle.click()
        wait_for(
            driver,
            lambda d: (
                "Settled" in d.find_element("css selector", "body").text
                or not any(b.text == "Relevant" for b in css(d, "button"))
            ),
            what="the pair settled",
        )
        with db.session_factory(db.init_db())() as s:
            assert db.decide(s, "squad", "majority")[(query, first_doc)] is True  # the adjudication decides

        # 5. Export from the Overview: the file the CLI writes.
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        _open_overview(driver)
        expander = wait_for(
            driver,
            lambda d: next((e for e in css(d, "summary") if "Export the judgments" in e.text), None),
            what="the export section",
        )
        expander.click()
        button = wait_for(
            driver, lambda d: next((b for b in css(d, "button") if "Download" in b.text), None), what="export"
        )
        button.click()
        done = wait_for(
            driver,
            lambda d: [p for p in downloads.iterdir() if not p.name.endswith(".crdownload")] or None,
            what="the exported file",
        )
        assert done[0].stat().st_size > 0
        screenshot(driver, "new_user_05_export.png")


# A client may send any file name: set Files with hostile names on the upload input, as a script would.
_SET_FILES = """
const [input, files] = arguments;
const dt = new DataTransfer();
for (const [name, text] of files) dt.items.add(new File([text], name, {type: "application/octet-stream"}));
input.files = dt.files;
input.dispatchEvent(new Event("change", {bubbles: true}));
"""


def _choose_source(driver, label: str) -> None:
    """Click New project's source choice, once drawn (right after a page switch it may not be there yet)."""
    wait_for(
        driver,
        lambda d: next((r for r in css(d, RADIO_LABEL) if r.text.startswith(label)), None),
        what=f"the {label} choice",
    ).click()


def _hostile_upload_is_refused(driver, home: Path, outside: Path) -> None:
    """Names with a folder part reach the page unchanged; they are refused in one line and nothing is written."""
    from selenium.webdriver.common.keys import Keys

    _choose_source(driver, "Upload")
    idle(driver)
    upload = wait_for(driver, lambda d: next(iter(css(d, 'input[type="file"]')), None), what="the upload input")
    hostile = ["../../evil.jsonl", str(outside / "evil.tsv")]
    files = [["corpus.jsonl", '{"_id": "d1", "text": "a document"}\n'], *([n, "evil\n"] for n in hostile)]
    driver.execute_script(_SET_FILES, upload, files)
    wait_for(
        driver,
        lambda d: css(d, '[data-testid="stFileUploaderDropzone"]')[0].text.count("evil") == 2,
        what="the three uploads",
    )
    idle(driver)
    name = wait_for(driver, lambda d: next(iter(css(d, 'input[aria-label="Dataset name"]')), None), what="name")
    name.send_keys("mine", Keys.ENTER)
    idle(driver)
    next(b for b in css(driver, "button") if b.text == "Check the data").click()
    alerts = '[data-testid="stAlert"]'
    alert = wait_for(driver, lambda d: next((a for a in css(d, alerts) if "refused" in a.text), None), what="refusal")
    assert alert.text.strip() == "upload '../../evil.jsonl' refused: a file name may not contain a folder"
    screenshot(driver, "new_project_00_hostile_upload.png")
    assert not list(home.rglob("evil*")) and not outside.exists()
    assert not (home / "datasets").exists() or not list((home / "datasets").iterdir())
    _choose_source(driver, "A BEIR folder")
    idle(driver)


@pytest.mark.slow
def test_a_run_is_built_from_a_small_beir_folder_through_new_project(
    isolated_home: Path, tmp_path: Path, tiny_model_dir: Path
) -> None:
    require_browser()
    from selenium.webdriver.common.keys import Keys

    from rrra_core.runtime.paths import demo_dataset_dir

    folder = tmp_path / "my_collection"
    shutil.copytree(demo_dataset_dir("adi"), folder)
    env = {"RRRA_HOME": str(isolated_home), "HF_HUB_OFFLINE": "1", "RRRA_ANNOTATOR": ALICE}
    with streamlit_app(env) as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
        open_page(driver, "New project")
        idle(driver)
        _hostile_upload_is_refused(driver, isolated_home, tmp_path / "outside")
        field = wait_for(driver, lambda d: next(iter(css(d, 'input[aria-label="BEIR folder"]')), None), what="path")
        field.send_keys(str(folder), Keys.ENTER)
        idle(driver)
        next(b for b in css(driver, "button") if b.text == "Check the data").click()
        wait_for(driver, lambda d: "Documents" in d.find_element("css selector", "body").text, what="the summary")
        idle(driver)
        radio = wait_for(
            driver,
            lambda d: next(
                (r for r in css(d, '[data-testid="stRadio"] label') if "local model folder" in r.text), None
            ),
            what="the model choice",
        )
        radio.click()
        idle(driver)
        model = wait_for(driver, lambda d: next(iter(css(d, 'input[aria-label="Model folder"]')), None), what="model")
        model.send_keys(str(tiny_model_dir), Keys.ENTER)
        idle(driver)
        screenshot(driver, "new_project_01_checked.png")
        build = wait_for(
            driver,
            lambda d: next((b for b in css(d, "button") if b.text == "Build the run" and b.is_enabled()), None),
            what="Build the run",
        )
        build.click()
        time.sleep(1)
        state = wait_for_job("new-project", every_s=2.0)
        assert state.status == "done", jobs.log_tail("new-project", 30)
        opened = wait_for(
            driver, lambda d: next((b for b in css(d, "button") if b.text.startswith("Open ")), None), what="Open"
        )
        screenshot(driver, "new_project_02_built.png")
        opened.click()
        wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
        idle(driver)
        run_id = str(state.meta.get("run"))
        wait_for(driver, lambda d: _sidebar_value(d, "Run") == run_id, what="the new run in the sidebar")
        screenshot(driver, "new_project_03_overview.png")
