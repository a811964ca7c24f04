"""Team mode (issue 28) in AppTest: sign-in gate, roles per page, verified names, and refusals at the server.

``[auth]`` is set in the simulated app's secrets (values made up here: AppTest never
contacts a provider) and ``st.user`` is the simulated signed-in person. The real
sign-in through an OpenID Connect provider is ``test_app_team_e2e.py``.
"""

from __future__ import annotations

import json
import secrets

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

import db
from pages.common.jobs_view import PROJECT_JOB
from rrra_core.runtime import jobs
from tests.app.conftest import APP, TinyRun

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ADMIN, ANNOTATOR, ADJUDICATOR = "ann@example.org", "bob@example.org", "carl@example.org"
TEAM = "pages/team/roles.py"


def _auth() -> dict:
    return {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": secrets.token_hex(32),
        "client_id": "rrra",
        "client_secret": secrets.token_hex(16),
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }


def _app(user: dict | None, page: str | None = None, query_params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = _auth()
    at.user = user if user is not None else {"is_logged_in": False}
    for k, v in (query_params or {}).items():
        at.query_params[k] = v
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _signed_in(email: str) -> dict:
    return {"is_logged_in": True, "email": email, "sub": f"sub-{email}"}


@pytest.fixture()
def team(tiny_run: TinyRun, store, monkeypatch: pytest.MonkeyPatch) -> TinyRun:
    """Ann is admin by the setting, Bob an annotator and Carl an adjudicator in the store; the env names Mallory."""
    monkeypatch.setenv("RRRA_ADMINS", ADMIN.upper())
    monkeypatch.setenv("RRRA_ANNOTATOR", "mallory")
    with store() as s:
        db.set_role(s, ANNOTATOR, "annotator", granted_by=ADMIN)
        db.set_role(s, ADJUDICATOR, "adjudicator", granted_by=ADMIN)
    return tiny_run


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_a_stranger_sees_the_sign_in_button_and_nothing_else(team: TinyRun) -> None:
    at = _app(None)
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.sidebar.selectbox and not at.text_input and not at.markdown and not at.title
    # Signed in without a role: one line and Sign out, no data.
    at = _app(_signed_in("dave@example.org"))
    assert len(at.error) == 1 and "no role yet" in at.error[0].value
    assert [b.label for b in at.button] == ["Sign out"] and not at.sidebar.selectbox


def test_solo_mode_without_auth_keeps_the_typed_name(tiny_run: TinyRun, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRRA_ANNOTATOR", "mallory")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.sidebar.text_input(key="sb_annotator").value == "mallory"
    assert not [b for b in at.button if b.label in ("Sign in", "Sign out")]


def test_an_admin_grants_a_role_on_the_team_page_and_it_applies_at_once(team: TinyRun, store) -> None:
    at = _app(_signed_in(ADJUDICATOR), TEAM)
    assert len(at.error) == 1 and "may not grant roles" in at.error[0].value
    at = _app(_signed_in(ADMIN), TEAM)
    at.text_input(key="team_person").input("Dave@Example.org")
    at.selectbox(key="team_role").select("adjudicator")
    next(b for b in at.button if b.label == "Grant").click().run()
    assert not at.exception and "is now adjudicator" in at.success[0].value
    with store() as s:
        assert db.get_role(s, "dave@example.org") == "adjudicator"
        (grant,) = db.list_actions(s, subject="dave@example.org")
    assert (grant.person, grant.action) == (ADMIN, "role_grant")
    at = _app(_signed_in("dave@example.org"), "pages/label/disagreements.py")
    assert not at.error and at.title[0].value == "Disagreements"


def test_an_annotator_labels_under_the_signed_in_name_whatever_the_address_says(team: TinyRun, store) -> None:
    at = _app(_signed_in("Bob@Example.org"), "pages/label/browser.py", {"annotator": "mallory"})
    assert not [t for t in at.sidebar.text_input if t.key == "sb_annotator"]  # no name to type
    assert "annotator" not in at.query_params  # the address keeps run and query only
    at.button(key="focus_relevant").click().run()
    assert not at.exception
    with store() as s:
        names = list(s.scalars(select(db.Judgment.annotator)))
    assert names == [ANNOTATOR]


@pytest.mark.parametrize(
    ("page", "refused"),
    [
        ("pages/train/retrain.py", "may not retrain"),
        ("pages/data/new_project.py", "may not build runs"),
        ("pages/label/disagreements.py", "may not settle disagreements"),
    ],
)
def test_a_page_the_role_may_not_use_is_one_line_of_refusal(team: TinyRun, page: str, refused: str) -> None:
    at = _app(_signed_in(ANNOTATOR), page)
    assert len(at.error) == 1 and refused in at.error[0].value and "annotator" in at.error[0].value
    assert not at.title  # the page did not run
    # Its owner role sees the page.
    at = _app(_signed_in(ADMIN), page)
    assert not _errors(at) and at.title


def test_guidelines_and_exports_are_offered_by_role(team: TinyRun) -> None:
    def labels(at: AppTest) -> set[str]:
        return {b.label for b in at.button}

    review = "pages/label/review.py"
    assert "Save the guidelines" not in labels(_app(_signed_in(ANNOTATOR), review))
    assert "Save the guidelines" in labels(_app(_signed_in(ADJUDICATOR), review))
    overview = "pages/label/overview.py"
    assert not _app(_signed_in(ADJUDICATOR), overview).get("download_button")
    assert _app(_signed_in(ADMIN), overview).get("download_button")


def test_a_retrain_submitted_after_the_role_was_taken_away_is_refused(team: TinyRun, store) -> None:
    """A forged (or stale) widget event: the form was drawn for an admin, the submit comes from a non-admin."""
    with store() as s:
        db.set_role(s, "erin@example.org", "admin", granted_by=ADMIN)
    at = _app(_signed_in("erin@example.org"), "pages/train/retrain.py")
    next(t for t in at.text_input if t.label == "New run name").input("adi-tiny-forged")
    with store() as s:
        db.set_role(s, "erin@example.org", "annotator", granted_by=ADMIN)
    next(b for b in at.button if b.label == "Start retraining").click().run()
    assert any("may not retrain" in e for e in _errors(at))
    assert jobs.job_state("adi-tiny-forged") is None


def _start_project_script() -> None:
    import streamlit as st

    from pages.common import jobs_view
    from rrra_core.runtime.errors import UserError

    try:
        jobs_view.start_project("/nowhere", "minilm", "test", 5, "forged-run")
    except UserError as err:
        st.error(str(err))


def test_a_job_start_is_checked_where_the_job_starts_not_only_on_the_page(team: TinyRun, store) -> None:
    at = AppTest.from_function(_start_project_script, default_timeout=60)
    at.secrets["auth"] = _auth()
    at.user = _signed_in(ADJUDICATOR)
    at.run()
    assert [e.value for e in at.error] and "may not build runs" in at.error[0].value
    assert jobs.job_state(PROJECT_JOB) is None
    with store() as s:
        assert not db.list_actions(s, action="job_start")


def test_an_adjudicator_never_settles_a_pair_they_judged_while_another_can(team: TinyRun, store) -> None:
    query, doc = team.first_query, team.hostile_doc
    at = _app(_signed_in(ADJUDICATOR), "pages/label/disagreements.py")
    with store() as s:
        ds = db.list_datasets(s)[0].name
        db.save_judgments(
            s,
            ds,
            [
                {"query_id": query, "doc_id": doc, "label": "relevant", "annotator": ADJUDICATOR},
                {"query_id": query, "doc_id": doc, "label": "not_relevant", "annotator": ANNOTATOR},
            ],
        )
    at.run()
    assert any("another adjudicator settles it" in c.value for c in at.caption)
    assert not [b for b in at.button if b.label == "Relevant"]
    # Ann (admin by the setting) is an outside adjudicator: she may, under her signed-in name.
    at = _app(_signed_in(ADMIN), "pages/label/disagreements.py")
    next(b for b in at.button if b.label == "Relevant").click().run()
    with store() as s:
        (adj,) = db.adjudications(s, ds).values()
    assert (adj.adjudicator, adj.verdict, adj.note) == (ADMIN, "relevant", "")


def _start_and_cancel_script() -> None:
    import sys

    import streamlit as st

    from pages.common import jobs_view

    jobs_view.start(
        "team-sleeper",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        kind="test",
        meta={},
        action="retrain",
    )
    st.write("cancelled" if jobs_view.cancel("team-sleeper") else "refused")


def test_who_started_and_who_cancelled_a_job_is_kept_with_the_job_and_in_the_store(
    tiny_run: TinyRun, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RRRA_ADMINS", raising=False)
    at = AppTest.from_function(_start_and_cancel_script, default_timeout=60)
    at.secrets["auth"] = _auth()
    at.secrets["rrra"] = {"admins": ["Ann@Example.org"]}  # the first admin named in secrets.toml
    at.user = _signed_in(ADMIN)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert [m.value for m in at.markdown] == ["cancelled"]
    state = jobs.job_state("team-sleeper")
    assert state.status == "cancelled" and state.meta["started_by"] == ADMIN
    exit_info = json.loads((jobs.jobs_dir() / "team-sleeper" / "exit.json").read_text(encoding="utf-8"))
    assert exit_info["cancelled_by"] == ADMIN
    with store() as s:
        log = [(e.person, e.action, e.subject) for e in db.list_actions(s)]
    assert log == [(ADMIN, "job_start", "team-sleeper"), (ADMIN, "job_cancel", "team-sleeper")]
