"""RRRA Studio: the Streamlit entry point (page config, the shared sidebar, navigation over pages/).

Run with ``streamlit run app.py``; ``.streamlit/config.toml`` binds it to
127.0.0.1. Heavy work never happens here: pages read run folders through
``pages/common/resources.py`` and start training as background jobs.
"""

from __future__ import annotations

import os

import streamlit as st

# The app must never reach a model hub: every model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pages.common.links import remember_app_url  # noqa: E402
from pages.common.state import remember, sidebar  # noqa: E402
from rrra_core.runtime.errors import UserError  # noqa: E402

st.set_page_config(page_title="RRRA Studio", layout="wide")

PAGES = {
    "Label": [
        st.Page("pages/label/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/label/browser.py", title="Hard negatives", icon=":material/manage_search:"),
        st.Page("pages/label/review.py", title="Review queue", icon=":material/fact_check:"),
        st.Page("pages/label/disagreements.py", title="Disagreements", icon=":material/balance:"),
    ],
    "Analyse": [
        st.Page("pages/analysis/embedding_map.py", title="Embedding map", icon=":material/scatter_plot:"),
        st.Page("pages/analysis/training.py", title="Training dynamics", icon=":material/show_chart:"),
        st.Page("pages/analysis/benchmarks.py", title="Ablations & baselines", icon=":material/leaderboard:"),
        st.Page("pages/analysis/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    ],
    "Train": [
        st.Page("pages/data/new_project.py", title="New project", icon=":material/create_new_folder:"),
        st.Page("pages/train/retrain.py", title="Retrain", icon=":material/model_training:"),
    ],
}

nav = st.navigation(PAGES)
remember_app_url(nav.url_path)
try:
    remember(sidebar())
    nav.run()
except UserError as err:
    # A damaged run file or an unknown id on any page: its one line, never a traceback (issue 25 item 9).
    st.error(str(err).splitlines()[0] if str(err) else type(err).__name__)
