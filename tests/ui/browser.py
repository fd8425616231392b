"""Debian's Chromium driven through its chromedriver by Selenium, for the console's tests.

No browser is downloaded: Selenium is told where the system's binaries are. Every request
the page makes (HTTP and WebSocket, with the frames received) is read back from Chromium's
performance log, so a test can check that nothing left the server's origin.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHECKOUT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("CONTRACTOR_TEST_ARTEFACTS", CHECKOUT / "artefacts")) / "console"
WAIT = 20.0


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        reason = "chromium and chromium-driver are not installed (scripts/test installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return browser, driver


class Browser:
    """One headless Chromium window, with what it requested, received and sent on its
    WebSocket."""

    def __init__(self, driver: webdriver.Chrome, base: str) -> None:
        self.driver = driver
        self.base = base
        self.requests: list[str] = []
        self.frames: list[str] = []
        self.sent: list[str] = []
        self.console: list[dict[str, Any]] = []

    def open(self, path: str) -> None:
        self.driver.get(f"{self.base}{path}")

    def go(self, fragment: str) -> None:
        """Follow a link inside the console (the page is not loaded again); ``title_is``
        then waits for the new page, not the one shown before."""
        self.driver.execute_script(
            "document.querySelector('main > *')?.setAttribute('data-stale', '');"
            "location.hash = arguments[0]",
            fragment,
        )

    def wait(self, condition: Any, timeout: float = WAIT, message: str = "") -> Any:
        """``condition`` asked again until it holds; an element the page redrew meanwhile
        (stale) or has not drawn yet counts as not yet."""
        ignored = (NoSuchElementException, StaleElementReferenceException)
        waiting = WebDriverWait(
            self.driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored
        )
        return waiting.until(condition, message)

    def find(self, selector: str) -> WebElement:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, selector), message=selector)

    def press(self, selector: str) -> None:
        """Click ``selector``, found afresh until a click lands: a live update may redraw
        the element between finding it and clicking it."""

        def click(driver: webdriver.Chrome) -> bool:
            driver.find_element(By.CSS_SELECTOR, selector).click()
            return True

        self.wait(click, message=selector)

    def all(self, selector: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self, selector: str = "main") -> str:
        """The text shown in ``selector`` (read again if the page redraws it meanwhile)."""

        def read(driver: webdriver.Chrome) -> str | None:
            try:
                return str(driver.find_element(By.CSS_SELECTOR, selector).text)
            except StaleElementReferenceException:
                return None

        found: str = self.wait(read, message=selector)
        return found

    def title_is(self, text: str) -> None:
        """Wait until the page titled ``text...`` is drawn (read in one step in the page, so
        a redraw in between cannot go stale)."""
        ready = (
            "const t = document.getElementById('page-title');"
            "return !document.querySelector('main[aria-busy], main > [data-stale]')"
            " && t ? t.textContent : null"
        )
        self.wait(
            lambda d: (d.execute_script(ready) or "").startswith(text),
            message=f"page title {text!r}; the page shows: {self.driver.title}",
        )

    def login(self, username: str, password: str) -> None:
        self.open("/ui/")
        self.find("#login-user").send_keys(username)
        self.find("#login-password").send_keys(password)
        self.find("#login-submit").click()
        self.title_is("Dashboard")

    def screenshot(self, name: str) -> Path:
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def run(self, script: str, *arguments: Any) -> Any:
        """Run ``script`` in the page as the body of an async function; its result."""
        wrapped = (
            "const done = arguments[arguments.length - 1];"
            f"(async (...args) => {{ {script} }})(...Array.from(arguments).slice(0, -1))"
            ".then(done, (error) => done({thrown: String(error)}));"
        )
        return self.driver.execute_async_script(wrapped, *arguments)

    def collect(self) -> None:
        """Read what Chromium logged since the last call."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            method, params = message["method"], message.get("params", {})
            if method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            elif method == "Network.webSocketCreated":
                self.requests.append(params["url"])
            elif method == "Network.webSocketFrameReceived":
                self.frames.append(params["response"]["payloadData"])
            elif method == "Network.webSocketFrameSent":
                self.sent.append(params["response"]["payloadData"])
        self.console += self.driver.get_log("browser")

    def assert_stayed_home(self) -> None:
        """Every request went to the server's origin (its WebSocket included); no script
        error reached the console."""
        self.collect()
        home = urlsplit(self.base).netloc
        assert self.requests, "no request was seen"
        for url in self.requests:
            parts = urlsplit(url)
            assert parts.scheme in {"http", "ws", "data"}, url
            assert parts.scheme == "data" or parts.netloc == home, url
        errors = [entry for entry in self.console if entry["level"] == "SEVERE"]
        assert not errors, errors


@contextmanager
def chromium(base: str, width: int = 1280, height: int = 800) -> Iterator[Browser]:
    """A headless Chromium on ``base`` at ``width`` x ``height``, quit however the block ends."""
    browser, driver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    with tempfile.TemporaryDirectory(prefix="contractor-chromium-") as profile:
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        session = webdriver.Chrome(service=Service(driver), options=options)
        try:
            session.set_script_timeout(WAIT)
            # the viewport itself at the size asked for, whatever the window frame takes
            session.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700},
            )
            # what Chromium loads for itself at start (its new tab page) is not the console's
            session.get("about:blank")
            session.get_log("performance")
            yield Browser(session, base)
        finally:
            session.quit()
