"""End to end in a real browser: headless Chromium drives ``streamlit run app.py`` on a tiny ADI run.

Opens the review queue, labels the suspected false negative with the keyboard
shortcut, checks the annotation store has it (and still has it after an app
restart), checks hostile text renders inertly in the DOM, and saves screenshots
under ``test-artifacts/``. In the same app (issue 25):

- the Hard negatives page's "Link to this query", exactly as the popover shows it, opens the same page, run,
  query and annotator in a fresh browser, which does not scroll on load, only after a label (items 12, 15);
- after a change of Dataset, the sidebar's Run box shows the run the pages use (item 13).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import db
from tests.app.conftest import HOSTILE_DOC, HOSTILE_QUERY, RUN_ID, TinyRun
from tests.app.e2e import chromium, css, idle, open_app, open_page, require_browser, screenshot, streamlit_app, wait_for
from tests.app.test_app_new_user_e2e import _press, _sidebar_value

ANNOTATOR = "e2e-reviewer"
OTHER_RUN = "adi-other"
# The largest scroll offset of the window or any element: Streamlit scrolls its main container, not the window.
SCROLLED = (
    "return Array.from(document.querySelectorAll('*')).reduce((m, e) => Math.max(m, e.scrollTop), window.scrollY);"
)


def _metric(driver, label: str) -> str | None:
    for m in css(driver, '[data-testid="stMetric"]'):
        if label in m.text:
            return m.find_element("css selector", '[data-testid="stMetricValue"]').text
    return None


def _candidate_id(driver) -> str | None:
    for md in css(driver, '[data-testid="stMarkdownContainer"]'):
        if md.text.startswith("Candidate"):
            return md.find_element("css selector", "code").text
    return None


def _judgments(annotator: str) -> list[tuple[str, str, str]]:
    with db.session_factory(db.init_db())() as s:
        return [(j.query_id, j.doc_id, j.label) for j in db.list_judgments(s, "adi_copy", annotator=annotator)]


def _other_dataset_run(tiny: TinyRun, home: Path, folder: Path) -> str:
    """A second dataset (a copy of the tiny one) with its own scored run, older than the tiny run; its folder."""
    shutil.copytree(tiny.dataset_dir, folder)
    run = home / "runs" / OTHER_RUN
    shutil.copytree(tiny.run_dir, run)
    cfg = json.loads((run / "config.json").read_text(encoding="utf-8"))
    cfg["data"] = {**cfg["data"], "dataset": str(folder)}
    (run / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    for f in run.iterdir():
        os.utime(f, (1_000_000, 1_000_000))
    return str(folder)


def _choose(driver, label: str, option: str) -> None:
    """Pick ``option`` in the sidebar selectbox ``label`` as a person does: open it, click the option."""
    box = next(
        b
        for b in css(driver, '[data-testid="stSidebar"] [data-testid="stSelectbox"]')
        if b.text.strip().startswith(label)
    )
    box.find_element("css selector", 'button[aria-label="Open"]').click()
    wait_for(
        driver, lambda d: next((o for o in css(d, '[role="option"]') if o.text.strip() == option), None), what=option
    ).click()


def _shared_link(driver) -> str:
    """The address the "Link to this query" popover shows, as a person copies it."""
    popover = wait_for(
        driver, lambda d: next((b for b in css(d, "button") if "Link to this query" in b.text), None), what="popover"
    )
    popover.click()
    code = wait_for(
        driver, lambda d: next((c for c in css(d, "pre code") if "query=" in c.text), None), what="the link"
    )
    return code.text.strip()


def _the_link_opens_the_same_query_in_a_fresh_browser(driver, query: str) -> None:
    """Items 12 and 15: the popover's link in a new browser; no scroll on load, a scroll to the row after a label."""
    link = _shared_link(driver)
    # A short window: the focused row starts below the fold, as on a laptop.
    with chromium(height=700) as fresh:
        fresh.get(link)
        wait_for(fresh, lambda d: any(h.text.strip() == "Hard negatives" for h in css(d, "h1")), what="the page")
        wait_for(fresh, lambda d: any(t.text == HOSTILE_QUERY for t in css(d, '[data-testid="stText"]')), what="query")
        wait_for(
            fresh,
            lambda d: any(i.get_attribute("value") == ANNOTATOR for i in css(d, 'input[aria-label="Annotator"]')),
            what="the annotator",
        )
        assert _sidebar_value(fresh, "Run") == RUN_ID
        wait_for(fresh, lambda d: css(d, ".st-key-browser_focused_row"), what="the candidates")
        idle(fresh)
        time.sleep(1.5)  # the focus marker's script ran 80 ms after the rows were drawn, then scrolled smoothly
        screenshot(fresh, "e2e_browser_linked.png")
        assert fresh.execute_script(SCROLLED) == 0, "the page scrolled on load, past the prompt and the query"
        before = set(_judgments(ANNOTATOR))
        _press(fresh, "2")
        new = wait_for(fresh, lambda d: set(_judgments(ANNOTATOR)) - before, what="the label")
        assert [q for q, _, _ in new] == [query]
        # After a label the focus moves on, and the page brings the focused row into view.
        wait_for(
            fresh,
            lambda d: (
                d.execute_script(
                    "var r = document.querySelector('.st-key-browser_focused_row').getBoundingClientRect();"
                    "return r.top >= 0 && r.top < window.innerHeight;"
                )
                and d.execute_script(SCROLLED) > 0
            ),
            what="the focused row scrolled into view",
        )


def _the_run_box_follows_the_dataset(driver, dataset: str) -> None:
    """Item 13: after a change of Dataset the Run box shows the run the pages use, not the old dataset's."""
    _choose(driver, "Dataset", Path(dataset).name)  # the box names a folder by its last part
    wait_for(driver, lambda d: f"run={OTHER_RUN}" in d.current_url, what="the pages on the new dataset's run")
    idle(driver)
    screenshot(driver, "e2e_dataset_changed.png")
    assert _sidebar_value(driver, "Run") == OTHER_RUN


@pytest.mark.slow
def test_review_queue_keyboard_label_persists_and_text_is_inert(
    tiny_run: TinyRun, isolated_home: Path, tmp_path: Path
) -> None:
    require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    other = _other_dataset_run(tiny_run, isolated_home, tmp_path / "adi_other")
    env = {"RRRA_HOME": str(isolated_home), "RRRA_ANNOTATOR": ANNOTATOR, "HF_HUB_OFFLINE": "1"}
    with streamlit_app(env) as url, chromium() as driver:
        open_app(driver, url, ANNOTATOR)
        open_page(driver, "Review queue")
        idle(driver)
        # Lower the threshold to 0 with the keyboard (the tiny random model is unsure of everything).
        thumb = wait_for(
            driver,
            lambda d: next(iter(css(d, '[data-testid="stSlider"] input[type="range"]')), None),
            what="the threshold slider",
        )
        driver.execute_script("arguments[0].focus()", thumb)
        ActionChains(driver).send_keys(Keys.HOME).perform()
        wait_for(
            driver,
            lambda d: "above 0.00 judged" in d.find_element("css selector", "body").text,
            what="the threshold at 0",
        )
        wait_for(driver, lambda d: _candidate_id(d) is not None, what="a queue item")
        idle(driver)
        left_before = int(
            wait_for(driver, lambda d: _metric(d, "Left in the queue"), what="the queue counter").replace(",", "")
        )
        doc = _candidate_id(driver)
        screenshot(driver, "e2e_review_queue.png")
        assert not css(driver, 'a[href*="evil.example"]')  # document text never links, bare addresses included

        driver.find_element("css selector", "h1").click()  # focus leaves the slider
        ActionChains(driver).send_keys("1").perform()  # 1 = relevant
        wait_for(driver, lambda d: _judgments(ANNOTATOR), timeout=30, what="the judgment in the database")
        saved = _judgments(ANNOTATOR)
        assert len(saved) == 1 and saved[0][1] == doc and saved[0][2] == "relevant"
        wait_for(
            driver,
            lambda d: (_metric(d, "Left in the queue") or "").replace(",", "") == str(left_before - 1),
            what="the queue to advance",
        )
        screenshot(driver, "e2e_review_after_label.png")

        # The hard-negative browser opens on the hostile query; nothing in it may execute or link.
        open_page(driver, "Hard negatives")
        idle(driver)
        search = wait_for(
            driver, lambda d: next(iter(css(d, 'input[aria-label="Find a query"]')), None), what="the query search"
        )
        search.send_keys("hostile phish", Keys.ENTER)
        wait_for(
            driver,
            lambda d: any(t.text == HOSTILE_QUERY for t in css(d, '[data-testid="stText"]')),
            what="the hostile query as text",
        )
        wait_for(
            driver,
            lambda d: any(HOSTILE_DOC in t.text for t in css(d, '[data-testid="stText"]')),
            what="the hostile document as text",
        )
        assert driver.execute_script("return window.__pwned === undefined")
        assert not css(driver, 'a[href*="evil.example"]')
        assert not css(driver, '[data-testid="stMain"] img[src="x"]')
        screenshot(driver, "e2e_browser.png")
        _the_link_opens_the_same_query_in_a_fresh_browser(driver, tiny_run.first_query)
        _the_run_box_follows_the_dataset(driver, other)
    pairs = str(len({(q, d) for q, d, _ in _judgments(ANNOTATOR)}))

    # Judgments persist across an app restart.
    with streamlit_app(env) as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
        wait_for(driver, lambda d: _metric(d, "Judged pairs") == pairs, what="the saved judgment on the overview")
