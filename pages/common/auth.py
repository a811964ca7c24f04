"""Team mode: who is signed in, what their role lets them do, and the checks before every write.

Team mode is on when ``.streamlit/secrets.toml`` (or a file named by the
``secrets.files`` option) has an ``[auth]`` section: Streamlit's own
``st.login`` / ``st.user`` / ``st.logout`` then sign people in through an
OpenID Connect provider. Then a stranger sees only the sign-in button, the
annotator is the signed-in identity (email, else ``sub``; never ``?annotator=``
or ``RRRA_ANNOTATOR``), and each action needs a role (``db.roles.PERMISSIONS``).
Without ``[auth]`` (solo mode) nothing here asks anything: every check passes.

The checks run on the server, in the code that writes or starts a job, not
only where a button is drawn: a widget event from a page the role may not use
(a forged request) is refused by :func:`check` in its callback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

import db

from . import keys
from . import resources as res
from .widgets import md_code

#: Names the first admins (comma- or space-separated emails); ``[rrra] admins`` in secrets.toml does too.
ADMINS_ENV = "RRRA_ADMINS"

#: How a refusal names each action (``"Your role … may not <what>"``).
WHAT = {
    "view": "use this app",
    "label": "save judgments",
    "adjudicate": "settle disagreements",
    "edit_guidelines": "edit the guidelines",
    "new_project": "build runs",
    "retrain": "retrain",
    "cancel_job": "cancel jobs",
    "export": "export judgments",
    "manage_roles": "grant roles",
}


def _secrets_section(name: str) -> Mapping[str, Any] | None:
    try:
        if not st.secrets.load_if_toml_exists() or name not in st.secrets:
            return None
        section = st.secrets[name]
    except (FileNotFoundError, KeyError):
        return None
    return section if isinstance(section, Mapping) else None


def team_mode() -> bool:
    """Whether sign-in is configured (an ``[auth]`` section in the secrets)."""
    return _secrets_section("auth") is not None


def providers() -> list[str | None]:
    """The configured providers: ``[None]`` for one unnamed ``[auth]``, else each ``[auth.<name>]``."""
    section = _secrets_section("auth") or {}
    named = [k for k, v in section.items() if isinstance(v, Mapping)]
    return [None] if "client_id" in section or not named else named


def identity() -> str | None:
    """The signed-in person (email lower-cased, else the provider's ``sub``); ``None`` in solo mode or signed out."""
    if not team_mode() or not st.user.is_logged_in:
        return None
    name = getattr(st.user, "email", None) or getattr(st.user, "sub", None)
    key = db.person_key(str(name or ""))
    return key or None


def admins() -> frozenset[str]:
    """The admins named by the settings (``RRRA_ADMINS`` and ``[rrra] admins``): admins whatever the store says."""
    section = _secrets_section("rrra") or {}
    return db.parse_admins(os.environ.get(ADMINS_ENV)) | db.parse_admins(section.get("admins"))


def role() -> str | None:
    """The signed-in person's role, read from the store on every call (a revoked role stops at once)."""
    me = identity()
    if me is None:
        return None
    with res.session() as s:
        return db.get_role(s, me, admins())


def can(action: str) -> bool:
    """Whether the person may do ``action``; always in solo mode."""
    return not team_mode() or db.allowed(role(), action)


def refusal(action: str) -> str:
    """The one line that says why ``action`` is refused."""
    mine = role()
    return (
        f"Your role ({mine or 'none'}) may not {WHAT.get(action, action)}: that needs "
        f"{db.PERMISSIONS[action]}. An admin grants roles on the Team page."
    )


def require(action: str) -> None:
    """Stop the page with the one-line refusal unless the person may do ``action``."""
    if not can(action):
        st.error(refusal(action))
        st.stop()


def check(action: str) -> bool:
    """In a callback or before a write: whether ``action`` is allowed; if not, the refusal is flashed."""
    if can(action):
        return True
    st.session_state[keys.FLASH] = ("error", refusal(action))
    return False


def record(action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
    """Put ``action`` on ``subject`` in the store's audit record under the signed-in name (team mode only)."""
    me = identity()
    if me is None:
        return
    with res.session() as s:
        db.record_action(s, me, action, subject, detail)


def _sign_in_screen() -> None:
    for provider in providers():
        if provider is None:
            st.button("Sign in", key=keys.SIGN_IN, type="primary", on_click=st.login)
        else:
            st.button(
                f"Sign in with {provider}",
                key=keys.sign_in(provider),
                type="primary",
                on_click=st.login,
                args=(provider,),
            )


def gate() -> None:
    """Team mode: stop a stranger at the sign-in button, and a signed-in person without a role at a one-line note.

    Called by ``app.py`` before anything else is drawn; does nothing in solo mode.
    """
    if not team_mode():
        return
    if not st.user.is_logged_in:
        _sign_in_screen()
        st.stop()
    me = identity()
    if me is None:
        st.error("The sign-in gave neither an email nor a subject: ask whoever runs the app.")
        st.button("Sign out", key=keys.SIGN_OUT, on_click=st.logout)
        st.stop()
    if role() is None:
        st.error(f"Signed in as {md_code(me)}, with no role yet: ask an admin to grant one on the Team page.")
        st.button("Sign out", key=keys.SIGN_OUT, on_click=st.logout)
        st.stop()


def signed_in_box(me: str) -> None:
    """The sidebar's name in team mode: who is signed in, as what, and Sign out."""
    # A code span: an email in plain Markdown becomes a mailto link.
    st.markdown(f":material/verified_user: {md_code(me)} · {role() or 'no role'}")
    st.caption("Every judgment is saved under this signed-in name.")
    st.button("Sign out", key=keys.SIGN_OUT, on_click=st.logout)
