"""Labelling guidelines render inertly (issue 25, item 6): nothing remote is fetched, only http(s) links live.

Anyone who labels may edit the guidelines, and every reviewer's browser shows
them: a Markdown image would be a tracking pixel, a ``javascript:`` link a trap.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import db
from pages.common import keys
from pages.common.safe_markdown import inert_markdown_html, is_live_link
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
STORE = "adi_copy"
HOSTILE_GUIDELINES = (
    "**Relevant** = it answers the question. ![t](https://track.example/pixel.png)\n\n"
    "[ok](https://example.org/guide) [trap](javascript:alert(1)) [file](file:///etc/passwd) [rel](/x)\n\n"
    '<img src="https://track.example/raw.png"> <script>window.__pwned = 1</script>\n\n'
    "[r]: https://track.example/ref.png\n\n![ref][r] [![nested](https://track.example/n.png)](https://example.org)"
)


def test_images_and_raw_html_become_text_and_only_http_links_stay_live() -> None:
    html = inert_markdown_html(HOSTILE_GUIDELINES)
    assert "<img" not in html and "<script" not in html and "<iframe" not in html
    assert "src=" not in html.replace("&quot;", '"').split("&lt;img")[0]  # no attribute that loads anything
    assert "track.example/pixel.png" in html  # the reader still sees what was meant
    assert html.count("<a ") == 2  # the https link and the link around the nested image
    assert 'href="https://example.org/guide"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'href="javascript' not in html and 'href="file' not in html and 'href="/x"' not in html
    assert "<strong>Relevant</strong>" in html  # still Markdown


@pytest.mark.parametrize(
    ("href", "live"),
    [
        ("https://example.org/a", True),
        ("HTTP://example.org", True),
        ("javascript:alert(1)", False),
        ("data:text/html,x", False),
        ("/relative/path", False),
        ("//example.org/protocol-relative", False),
        ("mailto:a@b.c", False),
        ("http://[::1", False),
    ],
)
def test_only_absolute_http_links_are_live(href: str, live: bool) -> None:
    assert is_live_link(href) is live


def test_the_review_queue_shows_the_guidelines_without_a_live_image(tiny_run: TinyRun, store) -> None:  # noqa: ANN001
    with store() as s:
        db.ensure_dataset(s, str(tiny_run.dataset_dir))
        db.save_guidelines(s, STORE, HOSTILE_GUIDELINES, "ana")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.sidebar.text_input(key=keys.ANNOTATOR).input("bo").run()
    at.switch_page("pages/label/review.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.proto.body for e in at.sidebar.get("html")]
    assert any("it answers the question" in body for body in shown), shown
    assert all("<img" not in body and "<script" not in body for body in shown)
    # Streamlit's own Markdown would turn the image into a live <img>: it must not carry the text.
    assert not any("track.example" in m.value for m in at.sidebar.markdown)
