"""Helpers for the real-browser tests: start ``streamlit run app.py`` and a headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("RRRA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RRRA_CHROMEDRIVER", "/usr/bin/chromedriver")
ARTIFACTS = REPO / "test-artifacts"
# The flags the project's machines need: no sandbox as root, and no background
# connections (this network refuses them, and each one would stall the start).
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)


def require_browser() -> None:
    """Skip without Chromium locally; in CI (``CI=true``) a missing browser is a failure."""
    if Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file():
        return
    msg = (
        f"headless Chromium not installed ({CHROMIUM}, {CHROMEDRIVER}); "
        ".ci/run installs Debian's chromium and chromium-driver"
    )
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_app(
    env: dict[str, str], port: int | None = None, timeout: float = 90.0, args: tuple[str, ...] = ()
) -> Iterator[str]:
    """``streamlit run app.py`` on a free localhost port (``args``: more options); yields its URL and stops it after."""
    port = port or free_port()
    log = open(Path(env.get("RRRA_HOME", tempfile.gettempdir())) / f"streamlit-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            *args,
        ],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read().strip() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start (exit {proc.poll()}); see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def chromium(width: int = 1400, height: int = 1800) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="rrra-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: object, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    return path


def wait_for(driver, predicate, timeout: float = 60.0, what: str = "condition"):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        # Streamlit redraws elements on every rerun: a stale or vanished element just means "look again".
        return WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.2,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(lambda d: predicate(d), message=f"timed out waiting for {what}")
    except TimeoutException:
        screenshot(driver, "e2e_failure.png")  # what the page looked like, for the CI log's reader
        raise


def css(driver, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_page(driver, title: str) -> None:
    link = wait_for(
        driver,
        lambda d: next((a for a in css(d, '[data-testid="stSidebarNavLink"]') if a.text.strip().endswith(title)), None),
        what=f"the {title} link",
    )
    link.click()
    wait_for(driver, lambda d: any(h.text.strip() == title for h in css(d, "h1")), what=f"the {title} page")


def idle(driver) -> None:
    """Wait until Streamlit has finished the current rerun."""
    time.sleep(0.3)
    wait_for(driver, lambda d: not css(d, '[data-testid="stStatusWidget"]'), what="the app to finish running")


def open_app(driver, url: str, annotator: str) -> None:
    """Load the app and wait until the sidebar holds ``annotator`` and the first rerun is done."""
    driver.get(url)
    wait_for(
        driver,
        lambda d: any(i.get_attribute("value") == annotator for i in css(d, 'input[aria-label="Annotator"]')),
        what="the sidebar",
    )
    idle(driver)
