"""Team-written Markdown (the labelling guidelines) as inert HTML: nothing remote is fetched.

Streamlit's own Markdown renders ``![t](https://host/track.png)`` as a live
``<img>``, so anyone who may edit the guidelines could make every reviewer's
browser call their server (a tracking pixel that learns who reviews, and
when). Here the Markdown is rendered by markdown-it-py with raw HTML off, an
image becomes its alt text and address as plain text, and only ``http(s)``
links stay live (opened in a new tab, with no referrer). The result contains
no element that loads anything, so ``st.html`` (DOMPurify on top) shows it as is.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

LIVE_SCHEMES = frozenset({"http", "https"})


def is_live_link(href: str) -> bool:
    """Whether a link may stay clickable: an absolute ``http(s)`` address with a host, nothing else."""
    try:
        parts = urlsplit(href.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in LIVE_SCHEMES and bool(parts.netloc)


def _image(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    # The alt text and the address as text: the reader learns what was meant, the browser fetches nothing.
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or [])
    src = str(token.attrGet("src") or "")
    label = f"image: {alt}" if alt else "image"
    return f'<span class="rrra-image">[{escape(label)}: <code>{escape(src)}</code>]</span>'


def _link_open(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not is_live_link(href):
        token.meta["inert"] = True
        return '<span class="rrra-link">'
    return f'<a href="{escape(href)}" target="_blank" rel="noopener noreferrer nofollow">'


def _link_close(tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    # The matching opener is the nearest unclosed link_open before this token.
    depth = 0
    for token in reversed(tokens[:idx]):
        if token.type == "link_close":
            depth += 1
        elif token.type == "link_open":
            if depth == 0:
                return "</span>" if token.meta.get("inert") else "</a>"
            depth -= 1
    return "</a>"


def _parser() -> MarkdownIt:
    # commonmark with tables and strikethrough; html=False turns raw HTML (<img>, <script>) into text.
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])
    renderer: RendererHTML = md.renderer  # type: ignore[assignment]
    renderer.rules["image"] = _image
    renderer.rules["link_open"] = _link_open
    renderer.rules["link_close"] = _link_close
    return md


_MD = _parser()


def inert_markdown_html(text: str) -> str:
    """``text`` (Markdown) as HTML with no image, no raw HTML and no live link but ``http(s)`` ones."""
    return _MD.render(text)
