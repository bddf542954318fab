"""The report page in a real browser: headless Chromium opens it with no console message (the
page's Content-Security-Policy turns any outside request or script into one), and takes a
screenshot. Skipped where no Chromium is installed (`apt-get install -y chromium` on Debian)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from test_report import FIXTURE

from cifar_core.report import build_report

CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome on PATH")

# Quiet, offline, no sandbox (tests run as root in containers), a throwaway profile per run.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def open_page(page: Path, screenshot: Path, tmp: Path, height: int = 4000) -> list[str]:
    """Load `page`, save a 1280-wide screenshot; return the console messages Chromium logged."""
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
               f"--window-size=1280,{height}", f"--screenshot={screenshot}", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180,
                            env={**os.environ, "HOME": str(tmp)})
    assert result.returncode == 0, result.stderr[-2000:]
    # Chromium logs every console message (and every CSP violation) as "...:CONSOLE:<line>] ...".
    return [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def assert_real_screenshot(path: Path, height: int) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.size == (1280, height)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 200  # text, tables and figures, not a blank page


def test_full_report_opens_without_console_messages(tmp_path):
    page = build_report(FIXTURE, tmp_path / "out", formats=("html",))["html"]
    screenshot = tmp_path / "report.png"
    assert open_page(page, screenshot, tmp_path, height=4000) == []
    assert_real_screenshot(screenshot, 4000)
    assert screenshot.stat().st_size > 100_000


def test_empty_report_is_clean_and_a_violation_would_be_caught(tmp_path):
    (tmp_path / "results").mkdir()
    page = build_report(tmp_path / "results", formats=("html",))["html"]
    assert open_page(page, tmp_path / "empty.png", tmp_path, height=800) == []
    assert_real_screenshot(tmp_path / "empty.png", 800)
    # The same page asking for an outside image: the check above is only worth something if
    # Chromium reports that (it blocks the request and logs the policy violation).
    leaky = tmp_path / "leaky.html"
    leaky.write_text(page.read_text().replace("</main>", '<img src="http://127.0.0.1:9/x.png"></main>'))
    messages = open_page(leaky, tmp_path / "leaky.png", tmp_path, height=800)
    assert any("Content Security Policy" in m for m in messages), messages
