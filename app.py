"""RRRA Studio: the Streamlit entry point (page config, the shared sidebar, navigation over pages/).

Run with ``streamlit run app.py``; ``.streamlit/config.toml`` binds it to
127.0.0.1. With ``[auth]`` in the secrets it runs in team mode: sign-in and
roles (``pages/common/auth.py``; the README's Deployment section). Heavy work
never happens here: pages read run folders through ``pages/common/resources.py``
and start training as background jobs.
"""

from __future__ import annotations

import os

import streamlit as st

# The app must never reach a model hub: every model is a local folder.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pages.common import auth  # noqa: E402
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

# Team mode (sign-in configured): the pages that need more than an annotator's role, by URL path. Checked here,
# on the server, before the page runs: a role that may not use a page gets its one-line refusal, whatever the link.
PAGE_ACTIONS = {
    "disagreements": "adjudicate",
    "new_project": "new_project",
    "retrain": "retrain",
    "team": "manage_roles",
}

# A stranger sees the sign-in button and nothing else; a signed-in person without a role, one line.
auth.gate()
if auth.team_mode():
    PAGES["Team"] = [st.Page("pages/team/roles.py", title="Team", icon=":material/group:", url_path="team")]
nav = st.navigation(PAGES)
remember_app_url(nav.url_path)
try:
    remember(sidebar())
    if auth.can(PAGE_ACTIONS.get(nav.url_path, "view")):
        nav.run()
    else:
        st.error(auth.refusal(PAGE_ACTIONS.get(nav.url_path, "view")))
except UserError as err:
    # A damaged run file or an unknown id on any page: its one line, never a traceback (issue 25 item 9).
    st.error(str(err).splitlines()[0] if str(err) else type(err).__name__)
