"""Render an HTML file in headless Chromium (Debian's chromium + chromedriver) and report."""

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-dev-shm-usage", "--window-size=1280,2400"]


def need_browser():
    """Skip without a browser on a developer's machine; in CI (.ci/run installs it) fail instead."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium")


def render(page: Path, screenshot: Path, profile: Path) -> dict:
    """Open ``page``; return the images' load state, console messages and resource URLs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or DRIVER), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        state = driver.execute_script(
            "return {images: Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]),"
            " svgs: document.querySelectorAll('svg').length,"
            " resources: performance.getEntriesByType('resource').map(r => r.name),"
            " title: document.title}")
        state["console"] = driver.get_log("browser")
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return state
