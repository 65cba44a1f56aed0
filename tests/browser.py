"""Debian's headless Chromium driven by Selenium, for the tests of the try-it page (imported as ``browser``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="no chromium / chromedriver (scripts/install-system-packages.sh)"
)

# Read in one script: the page re-renders its results on every live event, which makes elements stale.
RESULTS = """return [document.getElementById("results-title").textContent,
    [...document.querySelectorAll("#bars li .label")].map((e) => e.textContent),
    [...document.querySelectorAll("#timeline li")].map((e) => e.textContent),
    document.getElementById("error").textContent,
    document.getElementById("results-status").textContent]"""


@contextlib.contextmanager
def chromium(profile: Path, microphone: Path | None = None) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own ``profile`` folder; its fake microphone plays ``microphone`` once."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1000,900",
        f"--user-data-dir={profile}",
        *(
            []
            if microphone is None
            else [
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={microphone}%noloop",
            ]
        ),
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
