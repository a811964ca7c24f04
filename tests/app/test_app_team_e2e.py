"""Team mode end to end (issue 28): a real OpenID Connect provider, the real app, two people in headless Chromium.

``oidc-provider-mock`` runs a real provider (discovery, authorize form, token
endpoint, signed ID tokens) on a local port; the app's ``[auth]`` secrets,
cookie secret and client secret included, are generated here into a temporary
file named by ``--secrets.files`` (nothing secret is in the repository). Bob
is an annotator (a row in the store), Ann an admin (``RRRA_ADMINS``);
``RRRA_ANNOTATOR`` and ``?annotator=`` name Mallory, and must change nothing.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

import db
from db.adjudication import SOLE_NOTE
from tests.app.conftest import RUN_ID, TinyRun
from tests.app.e2e import chromium, css, free_port, require_browser, screenshot, streamlit_app, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ADMIN, ANNOTATOR = "ann@example.org", "bob@example.org"


def _secrets_file(folder: Path, app_port: int, provider_port: int) -> Path:
    path = folder / "secrets.toml"
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "rrra-e2e"\n'
        f'client_secret = "{secrets.token_hex(16)}"\n'
        f'server_metadata_url = "http://localhost:{provider_port}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    return path


def _button(driver, text: str):  # noqa: ANN001, ANN202
    return next((b for b in css(driver, "button") if b.text.strip() == text), None)


def _alerts(driver) -> list[str]:  # noqa: ANN001
    return [a.text for a in css(driver, '[data-testid="stAlert"]')]


def _sign_in(driver, url: str, who: str) -> None:  # noqa: ANN001
    """Open the app as a stranger (only the sign-in button), sign in at the provider as ``who``, come back."""
    driver.get(f"{url}/?annotator=mallory")
    wait_for(driver, lambda d: _button(d, "Sign in"), what="the sign-in button").click()
    field = wait_for(driver, lambda d: next(iter(css(d, 'input[name="sub"]')), None), what="the provider's form")
    field.send_keys(who)
    field.submit()
    wait_for(
        driver,
        lambda d: any(who in s.text for s in css(d, '[data-testid="stSidebar"]')),
        what=f"the app signed in as {who}",
    )


def _stranger_sees_only_the_button(driver, url: str) -> None:  # noqa: ANN001
    driver.get(f"{url}/retrain?annotator=mallory")
    wait_for(driver, lambda d: _button(d, "Sign in"), what="the sign-in button")
    # Streamlit's own chrome has icon buttons without text; the app draws one button, and no other text.
    assert [b.text.strip() for b in css(driver, "button") if b.text.strip()] == ["Sign in"]
    assert [m.text.strip() for m in css(driver, '[data-testid="stMain"]')] == ["Sign in"]
    assert not css(driver, '[data-testid="stSidebar"]') and not css(driver, "h1")


def _label_focused(driver, url: str, key: str) -> None:  # noqa: ANN001
    """Open the Hard negatives page with someone else's name in the address and label the focused row."""
    driver.get(f"{url}/browser?run={RUN_ID}&annotator=mallory")
    wait_for(driver, lambda d: css(d, f".st-key-{key} button"), what=f"the {key} button")[0].click()


def _judges(store) -> dict[str, str]:  # noqa: ANN001
    with store() as s:
        return {j.annotator: j.label for ds in db.list_datasets(s) for j in db.list_judgments(s, ds.name)}


def test_two_signed_in_people_do_what_their_roles_allow_under_their_own_names(
    tiny_run: TinyRun, store, tmp_path: Path, isolated_home: Path
) -> None:
    require_browser()
    from oidc_provider_mock import run_server_in_thread

    with store() as s:
        db.set_role(s, ANNOTATOR, "annotator", granted_by=ADMIN)
    app_port = free_port()
    env = {
        "RRRA_HOME": str(isolated_home),
        "RRRA_ANNOTATOR": "mallory",
        "RRRA_ADMINS": ADMIN,
        "HF_HUB_OFFLINE": "1",
    }
    with run_server_in_thread() as provider:
        secrets_toml = _secrets_file(tmp_path, app_port, provider.server_port)
        with streamlit_app(env, port=app_port, args=("--secrets.files", str(secrets_toml))) as url:
            # Bob, annotator: labels under his signed-in name whatever the address says; Retrain is refused.
            with chromium() as driver:
                try:
                    _stranger_sees_only_the_button(driver, url)
                    _sign_in(driver, url, ANNOTATOR)
                    assert "annotator" in driver.find_element("css selector", '[data-testid="stSidebar"]').text
                    _label_focused(driver, url, "focus_relevant")
                    wait_for(driver, lambda d: _judges(store) == {ANNOTATOR: "relevant"}, what="Bob's judgment")
                    wait_for(driver, lambda d: "annotator=" not in d.current_url, what="the name gone from the URL")
                    assert f"run={RUN_ID}" in driver.current_url
                    for page, refused in (("retrain", "may not retrain"), ("disagreements", "settle disagreements")):
                        driver.get(f"{url}/{page}")
                        wait_for(driver, lambda d, r=refused: any(r in a for a in _alerts(d)), what=refused)
                        assert not _button(driver, "Start retraining") and not css(driver, "h1")
                except Exception:
                    screenshot(driver, "team_e2e_bob.png")
                    raise
            # Ann, admin: the Retrain form is hers; her verdict on the same pair goes under her name; as the only
            # adjudicator she may settle the disagreement she voted in, and the record says so.
            with chromium() as driver:
                try:
                    _sign_in(driver, url, ADMIN)
                    driver.get(f"{url}/retrain")
                    wait_for(driver, lambda d: _button(d, "Start retraining"), what="the Retrain form")
                    _label_focused(driver, url, "focus_not_relevant")
                    wait_for(
                        driver,
                        lambda d: _judges(store) == {ANNOTATOR: "relevant", ADMIN: "not_relevant"},
                        what="Ann's judgment",
                    )
                    driver.get(f"{url}/disagreements")
                    wait_for(driver, lambda d: css(d, '[class*="st-key-dis_relevant_"] button'), what="the pair")[
                        0
                    ].click()
                    with store() as s:
                        ds = db.list_datasets(s)[0].name
                    wait_for(driver, lambda d: _adjudications(store, ds), what="the adjudication")
                    ((adjudicator, note),) = _adjudications(store, ds)
                    assert adjudicator == ADMIN and note == SOLE_NOTE
                    screenshot(driver, "team_e2e_ann.png")
                except Exception:
                    screenshot(driver, "team_e2e_ann.png")
                    raise


def _adjudications(store, dataset: str) -> list[tuple[str, str]]:  # noqa: ANN001
    with store() as s:
        return [(a.adjudicator, a.note) for a in db.adjudications(s, dataset).values()]
