"""The page address as shared state: run, query and annotator live in the URL's query parameters.

A refresh or a new tab starts a new Streamlit session with empty session
state; only the URL survives it. So the sidebar puts the chosen run and the
annotator's name into the URL, the Hard negatives page puts the query there,
and a session's first run takes them back (``?run=demo-squad&query=123&annotator=alice``).
That is also what makes a query linkable: a colleague opening the address sees
the same run and query.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from .keys import APP_URL

RUN = "run"
QUERY = "query"
ANNOTATOR = "annotator"
# The Hard negatives page's URL path: Streamlit names a page's path after its file (pages/label/browser.py).
BROWSER_PATH = "browser"


def read(param: str) -> str | None:
    """The URL's value for ``param``, stripped; ``None`` when absent or blank."""
    value = st.query_params.get(param)
    value = value.strip() if isinstance(value, str) else None
    return value or None


def write(param: str, value: str | None) -> None:
    """Put ``value`` in the URL (remove ``param`` when empty); untouched when already there.

    Every change sends the browser a message, so an unchanged value is never written again.
    """
    if value:
        if st.query_params.get(param) != value:
            st.query_params[param] = value
    elif param in st.query_params:
        del st.query_params[param]


def remember_app_url(page_path: str) -> None:
    """Keep the app's own address, the browser's URL less the shown page's path, for links to any page.

    ``st.context.url`` ends with the page on screen (``…/browser``). A link built on it
    doubled the path (``…/browser/browser``): Streamlit answers such an address with its
    index page, whose relative script paths then load that page again as HTML, and the
    browser shows nothing.
    """
    url = (st.context.url or "").rstrip("/")
    if page_path and url.endswith(f"/{page_path}"):
        url = url.removesuffix(f"/{page_path}")
    st.session_state[APP_URL] = url


def browser_link(run_id: str, query_id: str, annotator: str | None = None) -> str:
    """The address that opens ``query_id`` of ``run_id`` on the Hard negatives page, as ``annotator`` when given.

    Absolute once :func:`remember_app_url` has run (``app.py`` calls it on every rerun).
    """
    params = {RUN: run_id, QUERY: query_id, **({ANNOTATOR: annotator} if annotator else {})}
    return f"{st.session_state.get(APP_URL, '')}/{BROWSER_PATH}?{urlencode(params)}"
