"""Team: who has which role, and (for admins) granting and revoking them.

Shown in team mode only (``app.py`` adds it when sign-in is configured), and
only to admins. The settings' admins (``RRRA_ADMINS``, ``[rrra] admins``) are
listed apart: they are admins whatever the table says. Every change is written
to the store's audit record under the signed-in admin's name.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from pages.common import auth, keys, labeling
from pages.common import resources as res
from pages.common.widgets import md_code

st.title("Team")
labeling.show_flash()
auth.require("manage_roles")
me = auth.identity() or ""


def _grant() -> None:
    if not auth.check("manage_roles"):
        return
    person = str(st.session_state.get(keys.TEAM_PERSON) or "")
    role = str(st.session_state.get(keys.TEAM_ROLE) or "")
    try:
        with res.session() as s:
            row = db.set_role(s, person, role, granted_by=me)
    except db.AnnotationError as err:
        labeling.flash("error", str(err))
        return
    st.session_state[keys.TEAM_PERSON] = ""
    labeling.flash("success", f"{row.person} is now {row.role}.")


def _revoke(person: str) -> None:
    if not auth.check("manage_roles"):
        return
    with res.session() as s:
        db.revoke_role(s, person, revoked_by=me)
    labeling.flash("info", f"{person} has no role now.")


st.caption(
    "annotator: label and see the queue · adjudicator: also settle disagreements and edit the guidelines · "
    "admin: also New project, Retrain, cancelling jobs, exports and roles."
)
fixed = sorted(auth.admins())
if fixed:
    st.markdown("Admins named by the settings: " + ", ".join(md_code(p) for p in fixed))

with st.form("team_grant_form", border=True):
    c = st.columns([3, 2, 1], vertical_alignment="bottom")
    c[0].text_input("Person (their sign-in email)", key=keys.TEAM_PERSON, max_chars=100)
    c[1].selectbox("Role", db.ROLES, key=keys.TEAM_ROLE)
    c[2].form_submit_button("Grant", key=keys.TEAM_GRANT, on_click=_grant, type="primary")

with res.session() as s:
    rows = db.list_roles(s)
if not rows:
    st.caption("Nobody has a role in the store yet.")
else:
    st.dataframe(
        pd.DataFrame(
            [{"person": r.person, "role": r.role, "granted by": r.granted_by, "granted at": r.granted_at} for r in rows]
        ),
        hide_index=True,
    )
    for r in rows:
        if r.person != me:  # revoking oneself locks the page; another admin (or the settings) can
            st.button(f"Revoke {r.person}", key=keys.team_revoke(r.person), on_click=_revoke, args=(r.person,))
