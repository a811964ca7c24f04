"""Small display pieces shared by pages: inert text, probability bars, label badges.

Safety rule: query and document text comes from users' data, so it is shown
with ``st.text`` (no Markdown, no HTML) or, where Streamlit only takes a
Markdown label (expanders, buttons), through :func:`md_escape`. HTML is only
ever built from numbers and constants (:func:`prob_bar_html`, :func:`focus_marker_html`).
"""

from __future__ import annotations

import re
from typing import Any

import streamlit as st

CLASS_COLOURS = {"TP": "#2e7d32", "FN": "#d84315", "FP": "#6a1b9a", "TN": "#90a4ae"}
LABEL_TEXT = {"relevant": "✅ relevant", "not_relevant": "❌ not relevant", "unsure": "❔ unsure"}

# Every ASCII punctuation character may be backslash-escaped in CommonMark;
# these are the ones Markdown, Streamlit's directives (:red[...], :emoji:) and
# LaTeX ($...$) give meaning to.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'])")


def md_escape(text: str, limit: int | None = None) -> str:
    """``text`` made inert for a Markdown label, newlines folded, optionally shortened."""
    flat = " ".join(str(text).split())
    if limit is not None and len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return _MD_SPECIAL.sub(r"\\\1", flat)


def md_code(text: str) -> str:
    """``text`` as inline code: shown literally (no Markdown, no HTML); backticks cannot close it."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def short(text: str, limit: int = 90) -> str:
    """Plain one-line preview (for widgets that show options as plain text)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def doc_text(doc: Any) -> str:
    """Title and body of a corpus document, as plain text."""
    if doc is None:
        return "(document not in the corpus)"
    title = (getattr(doc, "title", "") or "").strip()
    body = (getattr(doc, "text", "") or "").strip()
    return f"{title}\n\n{body}" if title else body or "(empty document)"


def doc_parts(doc: Any) -> tuple[str, str]:
    """(title, body) of a corpus document, stripped; the body says so when the document is missing or empty."""
    if doc is None:
        return "", "(document not in the corpus)"
    title = (getattr(doc, "title", "") or "").strip()
    return title, (getattr(doc, "text", "") or "").strip() or "(empty document)"


def show_text(text: str) -> None:
    """Render user data as plain text: never Markdown, never HTML."""
    st.text(text)


def prob_bar_html(p_tp: float, p_fn: float, p_fp: float, p_tn: float, width: int = 160) -> str:
    """A small stacked bar of the four class probabilities, built from numbers only."""
    parts = []
    for name, p in (("TP", p_tp), ("FN", p_fn), ("FP", p_fp), ("TN", p_tn)):
        w = max(0.0, min(1.0, float(p))) * 100.0
        parts.append(
            f'<span title="P({name}) = {float(p):.3f}" '
            f'style="display:inline-block;height:12px;width:{w:.2f}%;background:{CLASS_COLOURS[name]}"></span>'
        )
    legend = " ".join(f"{n} {float(p):.2f}" for n, p in (("TP", p_tp), ("FN", p_fn), ("FP", p_fp), ("TN", p_tn)))
    return (
        f'<div style="width:{width}px;display:flex;border:1px solid #ccc;border-radius:2px;overflow:hidden">'
        f"{''.join(parts)}</div>"
        f'<div style="font-size:11px;color:#666">{legend}</div>'
    )


def prob_bar(row: Any) -> None:
    st.html(prob_bar_html(row["p_tp"], row["p_fn"], row["p_fp"], row["p_tn"]))


def legend() -> None:
    st.html(
        " ".join(
            f'<span style="display:inline-block;width:10px;height:10px;background:{c};margin:0 3px 0 8px"></span>{n}'
            for n, c in CLASS_COLOURS.items()
        )
    )


def focus_marker_html(css_class: str, nonce: int, scroll: bool = False) -> str:
    """Outline the element with ``css_class``; with ``scroll``, also bring it into view (only if it is off screen).

    Built from a key constant and a number, never from user data. Scroll only when a
    person moved the focus (a label, a key): on a page's first draw the focused row sits
    below the name prompt and the query, and scrolling to it hid them. ``nonce`` (the
    focused row) changes the element exactly when the focus moves, so the browser runs
    the script then and leaves the scroll position alone otherwise.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", css_class):
        raise ValueError(f"not a CSS class name: {css_class!r}")
    selector = f".st-key-{css_class}"
    style = (
        f"<style>{selector}{{outline:3px solid #1565c0;outline-offset:3px;"
        f"background:rgba(21,101,192,0.07);border-radius:8px}}</style>"
    )
    if not scroll:
        return style
    return (
        f"{style}<script>/* focus {int(nonce)} */ setTimeout(function () {{"
        f"var el = document.querySelector('{selector}');"
        "if (el) el.scrollIntoView({block: 'nearest', behavior: 'smooth'});"
        "}, 80);</script>"
    )


def label_badge(label: str | None) -> str:
    return LABEL_TEXT.get(label or "", "—")
