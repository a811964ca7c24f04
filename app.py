"""RRRA Studio: the Streamlit entry point (page config and navigation over pages/)."""

from __future__ import annotations

import os

import streamlit as st

# The app must never reach a model hub: every model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

st.set_page_config(page_title="RRRA Studio", layout="wide")
nav = st.navigation([st.Page("pages/overview.py", title="Overview", default=True)])
nav.run()
