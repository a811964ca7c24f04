"""End to end in a real browser: the Embedding map computes its map in the background, then draws it with Plotly.

Opens the page on a tiny ADI run with no map yet, follows the progress bar
until the page redraws by itself with the chart (the fragment's rerun that
AppTest cannot exercise), checks the points and the c → a arrows are in the
DOM, that hostile text stays inert, that a box selection (the toolbar's box
tool: dragging pans by default) lists the selected pairs, and saves
screenshots under ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rrra_core.analysis.projection import Scope, load_projection
from rrra_core.runtime.runs import open_run
from tests.app.conftest import RUN_ID, TinyRun
from tests.app.e2e import chromium, css, idle, open_app, open_page, require_browser, screenshot, streamlit_app, wait_for

ANNOTATOR = "e2e-mapper"


@pytest.mark.slow
def test_embedding_map_computes_in_the_background_and_renders_plotly_points(
    tiny_run: TinyRun, isolated_home: Path
) -> None:
    require_browser()
    from selenium.webdriver.common.action_chains import ActionChains

    env = {"RRRA_HOME": str(isolated_home), "RRRA_ANNOTATOR": ANNOTATOR, "HF_HUB_OFFLINE": "1"}
    with streamlit_app(env) as url, chromium() as driver:
        open_app(driver, url, ANNOTATOR)
        open_page(driver, "Embedding map")
        wait_for(
            driver, lambda d: css(d, '[data-testid="stProgress"]') or css(d, ".js-plotly-plot"), what="the progress bar"
        )
        screenshot(driver, "e2e_map_progress.png")

        # The page redraws by itself when the background job is done.
        points = wait_for(
            driver,
            lambda d: len(css(d, ".js-plotly-plot .scatterlayer path.point")) or None,
            timeout=400,
            what="the map's points",
        )
        proj = load_projection(open_run(RUN_ID), Scope(tiny_run.first_query))
        assert proj is not None
        wait_for(
            driver,
            lambda d: len(css(d, ".js-plotly-plot .scatterlayer path.point")) == len(proj.points),
            what="every point drawn",
        )
        assert points > 0
        arrows = css(driver, ".js-plotly-plot .annotation-arrow-g")
        assert len(arrows) == int((proj.points["kind"] == "corrected").sum())
        # Hostile query/document text never runs or links, in the page or in the chart.
        assert driver.execute_script("return window.__pwned === undefined")
        assert not css(driver, 'a[href*="evil.example"]')
        idle(driver)
        screenshot(driver, "e2e_embedding_map.png")

        # A box drawn over the whole plot selects every point; the list of pairs follows. Dragging pans by
        # default (so that one click selects one point): pick the toolbar's box select first.
        box_tool = css(driver, '.js-plotly-plot .modebar-btn[data-val="select"]')[0]
        driver.execute_script("arguments[0].click()", box_tool)
        plot = css(driver, ".js-plotly-plot .nsewdrag")[0]
        w, h = plot.size["width"], plot.size["height"]
        ActionChains(driver).move_to_element_with_offset(
            plot, -w // 2 + 3, -h // 2 + 3
        ).click_and_hold().move_by_offset(w - 6, h - 6).release().perform()
        n_pairs = int(proj.points["doc_id"].notna().sum() - (proj.points["kind"] == "corrected").sum())
        listed = min(n_pairs, 30)  # the page lists at most 30 pairs with buttons

        def relabel_buttons(d) -> int:
            return sum(b.text.strip() == "Relevant" for b in css(d, '[data-testid="stMain"] button'))

        wait_for(driver, lambda d: relabel_buttons(d) == listed, timeout=60, what="a relabel row per selected pair")
        if n_pairs > listed:
            assert (
                f"Showing the first {listed} of {n_pairs} selected pairs."
                in driver.find_element("css selector", "body").text
            )
        screenshot(driver, "e2e_embedding_map_selection.png")
