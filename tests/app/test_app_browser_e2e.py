"""End to end in a real browser: headless Chromium drives ``streamlit run app.py`` on a tiny ADI run.

Opens the review queue, labels the suspected false negative with the keyboard
shortcut, checks the annotation store has it (and still has it after an app
restart), checks hostile text renders inertly in the DOM, and saves screenshots
under ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import db
from tests.app.conftest import HOSTILE_DOC, HOSTILE_QUERY, TinyRun
from tests.app.e2e import chromium, css, idle, open_app, open_page, require_browser, screenshot, streamlit_app, wait_for

ANNOTATOR = "e2e-reviewer"


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


@pytest.mark.slow
def test_review_queue_keyboard_label_persists_and_text_is_inert(tiny_run: TinyRun, isolated_home: Path) -> None:
    require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

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

    # Judgments persist across an app restart.
    with streamlit_app(env) as url, chromium() as driver:
        driver.get(url)
        wait_for(driver, lambda d: any(h.text.strip() == "RRRA Studio" for h in css(d, "h1")), what="the overview")
        wait_for(driver, lambda d: _metric(d, "Judged pairs") == "1", what="the saved judgment on the overview")
