"""The HTML report in a real browser: headless Chromium loads it cleanly, shows the matrix, screenshots well.

Needs Debian's `chromium`. When it is missing the first test tries `apt-get install -y chromium` once
(root only, with a timeout) and skips with the reason if that cannot work. Set
`RETAIN_REPORT_SCREENSHOT=docs/report-screenshot.png` to keep the screenshot (that is how the one in
docs/ is made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixture import build_results, hostile_results, injected

from retain.report import render_report

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1200, 3000)
CONSOLE = re.compile(r":CONSOLE[:(]|Uncaught|net::ERR_")


def _install() -> str | None:
    """Try once to install chromium with apt-get; returns why it failed, or None."""
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, cannot apt-get install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd, limit in ((["apt-get", "update"], 300), (["apt-get", "install", "-y", "chromium"], 600)):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} took longer than {limit} s"
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"{' '.join(cmd)} failed: {tail[0]}"
    return None


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path to a chromium binary, installed once if missing; skips the browser tests if impossible."""
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if found:
        return found
    why = _install()
    found = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if not found:
        pytest.skip(f"headless chromium unavailable ({why or 'installed, but not found on PATH'})")
    return found


def headless(binary: str, url: str, *extra: str, profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    return subprocess.run([binary, *flags, *extra, url], capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-report")
    return render_report(build_results(), out)["html"]


def test_detector_sees_console_errors(chromium, tmp_path):
    """Guard for the next test: a page that does log an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>throw new Error("boom")</script></body></html>', encoding="utf-8")
    done = headless(chromium, bad.as_uri(), "--enable-logging=stderr", "--v=0", "--dump-dom",
                    profile=tmp_path / "profile")
    assert any("boom" in line for line in console_errors(done.stderr)), done.stderr[-2000:]


def test_loads_without_console_errors_and_shows_the_matrix(chromium, page, tmp_path):
    done = headless(chromium, page.as_uri(), "--enable-logging=stderr", "--v=0", "--dump-dom",
                    profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_errors(done.stderr) == []
    dom = done.stdout
    assert '<table class="matrix">' in dom and 'data-run="full"' in dom and 'data-task="toy-ner"' in dom
    assert "Use multitask" in dom
    assert "<script" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # text, not an element
    assert dom.count("<img ") == 6  # trade-off, heatmap, four tasks, all inline


def test_screenshot_is_non_trivial(chromium, page, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    done = headless(chromium, page.as_uri(), f"--screenshot={shot}", profile=tmp_path / "profile")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == WINDOW
        colours = im.convert("RGB").resize((300, 750)).getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 200  # text, coloured cells and plots, not a blank page
    assert max(n for n, _ in colours) < 0.9 * 300 * 750  # no single colour fills the page
    if keep := os.environ.get("RETAIN_REPORT_SCREENSHOT"):
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, keep)


# Payloads that print PWNED on the browser console if they ever run (instead of alert, which headless
# Chromium would block silently).
LOUD = ["<script>console.error('PWNED')</script>", "<img src=x onerror=console.error('PWNED')>",
        "\"><svg onload=console.error('PWNED')>", "<details open ontoggle=console.error('PWNED')>",
        "[x](javascript:console.error('PWNED'))", "<iframe src=javascript:console.error('PWNED')>"]


def _loaded(chromium, html_file: Path, tmp_path: Path) -> tuple[str, str]:
    done = headless(chromium, html_file.as_uri(), "--enable-logging=stderr", "--v=0", "--virtual-time-budget=2000",
                    "--dump-dom", profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_the_browser_check_sees_a_payload_run(chromium, tmp_path):
    """Guard for the next test: unescaped, the payloads do run and are seen."""
    page = tmp_path / "raw.html"
    page.write_text("<html><body>" + " ".join(LOUD) + "</body></html>", encoding="utf-8")
    dom, log = _loaded(chromium, page, tmp_path)
    assert "PWNED" in "".join(console_errors(log)) and injected(dom)


def test_hostile_results_run_nothing_in_either_report(chromium, tmp_path):
    from markdown_it import MarkdownIt

    paths = render_report(hostile_results(LOUD), tmp_path / "report")
    as_html = tmp_path / "report-md.html"  # report.md as a Markdown viewer would show it
    as_html.write_text("<html><body>" + MarkdownIt("commonmark").render(paths["markdown"].read_text("utf-8"))
                       + "</body></html>", encoding="utf-8")
    for page in (paths["html"], as_html):
        dom, log = _loaded(chromium, page, tmp_path)
        assert not any("PWNED" in line for line in console_errors(log)), page
        assert injected(dom) == [], (page, injected(dom))
        assert "console.error(&#x27;PWNED&#x27;)" in dom or "console.error('PWNED')" in dom  # shown as text
