"""User text is shown inertly: never parsed as HTML or Markdown (AppTest side; the browser test checks the DOM)."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from pages.common.widgets import md_code, md_escape, prob_bar_html
from tests.app.conftest import APP, HOSTILE_DOC, HOSTILE_QUERY, TinyRun

LINK = re.compile(r"(?<!\\)\[[^\]]*(?<!\\)\]\(")  # an unescaped [text]( Markdown link


def _markdown_sources(at: AppTest) -> list[str]:
    """Every string Streamlit would parse as Markdown: markdown bodies, captions and expander labels."""
    return [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.label for e in at.expander]


@pytest.mark.parametrize("page", ["pages/label/browser.py", "pages/label/review.py"])
def test_hostile_query_and_document_render_as_plain_text(tiny_run: TinyRun, page: str) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page).run()
    if page.endswith("review.py"):
        at.slider(key="_review_threshold").set_value(0.0).run()
    assert not at.exception
    texts = [t.value for t in at.text]
    if page.endswith("browser.py"):
        assert HOSTILE_QUERY in texts
        assert any(HOSTILE_DOC in t for t in texts)
    for src in _markdown_sources(at):
        assert "<script" not in src and "<img" not in src and "<b>" not in src, src
        assert not LINK.search(src), src
    assert not at.get("html") or all("evil" not in h.proto.body for h in at.get("html"))


def test_md_escape_and_md_code_neutralise_markdown_and_html() -> None:
    s = md_escape("[x](http://e) **b** <script> :red[x] $x$")
    assert not LINK.search(s) and "<script>" not in s and "\\*\\*" in s and "\\$" in s and "\\:red" in s
    assert md_code("a`b") == "`a'b`"  # a backtick cannot close the code span early
    assert md_escape("a" * 50, limit=10).endswith("…")


def test_probability_bar_html_is_built_from_numbers_only() -> None:
    html = prob_bar_html(0.1, 0.2, 0.3, 0.4)
    assert "width:10.00%" in html and "P(TN) = 0.400" in html
    with pytest.raises((TypeError, ValueError)):
        prob_bar_html("<script>", 0, 0, 0)  # type: ignore[arg-type]
