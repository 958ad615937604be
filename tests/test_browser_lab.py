"""The quickstart in a real JupyterLab and a real Chromium: run it, build from the app, see the plots.

JupyterLab is started the way a class starts it, through ``workbench lab`` (as root too, where it adds
--allow-root by itself), on 127.0.0.1 with a token, in a temporary folder; Playwright drives Debian's
Chromium (never a downloaded browser). Screenshots of each tab are kept in test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright import sync_api

from workbench.backends.cpu_features import cpu_flags, int8_products_saturate

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
TOKEN = "workbench-browser-test"
#: Above this load average per core the machine is shared by other jobs and speed-ups are noise-bound.
BUSY_LOAD_PER_CORE = 2.0

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path, workspace: Path) -> Iterator[str]:
    root = tmp_path / "notebooks"
    port = free_port()
    env = {**os.environ, "WORKBENCH_WORKSPACE": str(workspace), "WORKBENCH_SAMPLES": str(REPO / "sample_models"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_TOKEN": TOKEN}
    log = (tmp_path / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "workbench", "lab", "--no-browser", "--port", str(port), "--dir", str(root)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("workbench lab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)  # workbench lab passes it on: JupyterLab and its kernels stop too
        server.wait(60)
        log.close()


def test_quickstart_builds_from_the_app(lab: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 2800})
        offline = []  # requests that left 127.0.0.1: a classroom may have no internet
        page.on("request", lambda r: offline.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:",
                                                                                   "blob:", "about:")) else None)
        try:
            drive_quickstart(page, lab)
            assert offline == [], offline[:10]
        finally:
            page.screenshot(path=str(ARTIFACTS / "quickstart.png"), full_page=True)
            browser.close()


def shoot(page: sync_api.Page, app: sync_api.Locator, tab: str) -> None:
    """Each tab's own screenshot, so its layout can be looked at."""
    app.get_by_role("tab", name=tab).click()
    page.wait_for_timeout(500)
    app.screenshot(path=str(ARTIFACTS / f"quickstart-{tab.lower()}.png"))


def fits(locator: sync_api.Locator) -> bool:
    """Nothing of the element's content is cut off (its content is no wider than the element)."""
    return bool(locator.evaluate("e => e.scrollWidth <= e.clientWidth + 1"))


def drive_quickstart(page: sync_api.Page, base: str) -> None:
    page.goto(f"{base}/lab/tree/quickstart.ipynb?token={TOKEN}")
    page.locator(".jp-Notebook").wait_for(timeout=60_000)
    select_kernel = page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True)
    with contextlib.suppress(sync_api.TimeoutError):  # asked only when the kernel did not start by itself
        select_kernel.click(timeout=15_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    app = page.locator(".jp-OutputArea-output .widget-tab").first
    app.wait_for(timeout=120_000)
    # The quickstart builds FP16 and INT8 from Python, then shows the runs table.
    printed = page.locator(".jp-RenderedText", has_text="vs FP32").filter(has_text="int8 · b1")
    printed.wait_for(timeout=240_000)
    line = next(t for t in printed.inner_text().splitlines() if t.startswith("int8 · b1"))
    speedup, _, high = map(float, re.search(r"([0-9.]+)x \[([0-9.]+), ([0-9.]+)\] vs FP32", line).groups())
    accuracy, reference = re.search(r"accuracy ([0-9.]+)% \(FP32: ([0-9.]+)%\)", line).groups()
    if os.getloadavg()[0] / (os.cpu_count() or 1) <= BUSY_LOAD_PER_CORE:
        # The first INT8 build of the quickstart: at least twice as fast with VNNI, 1.4x with 7-bit weights without.
        assert speedup >= (1.4 if int8_products_saturate(cpu_flags()) else 2.0), line
    else:  # other jobs own the CPU: the ratio is noise-bound, so only "not measurably slower" (its interval) is judged
        assert high >= 1.0, line
    assert abs(float(accuracy) - float(reference)) <= 0.5, line  # ... at the same accuracy, as the notebook says
    page.locator(".jp-OutputArea-output table.dataframe:not(.wb-runs)").wait_for(timeout=60_000)
    assert page.locator(".jp-OutputArea-output .jp-RenderedText", has_text="AssertionError").count() == 0
    runs_rows = app.locator("table.wb-runs tbody tr")
    app.get_by_role("tab", name="Results").click()
    runs_rows.first.wait_for(timeout=30_000)
    before = runs_rows.count()
    assert before == 2
    box = app.locator(".widget-html", has=page.locator(".wb-runs-box"))
    assert box.evaluate("e => e.getBoundingClientRect().right") <= app.evaluate(
        "e => e.getBoundingClientRect().right") + 1  # the table scrolls inside the panel, never past it
    speedup_header = app.locator("table.wb-runs th", has_text="speed-up vs FP32, same engine (×)")
    assert speedup_header.locator(".wb-help").count() == 1
    shoot(page, app, "Results")

    app.get_by_role("tab", name="Build").click()
    dynamic = app.locator(".widget-toggle-button", has_text="int8-dynamic")
    assert fits(dynamic), "the int8-dynamic label is cut"
    assert app.locator(".wb-help:visible").count() >= 5  # a "?" beside the choices
    # backends that do not run here: one line, their install hints folded away
    assert app.locator("details[open]", has_text="Not available here").count() == 0
    shoot(page, app, "Build")
    shoot(page, app, "Sweep")
    assert app.locator(".widget-html", has_text="Ctrl-click").count() == 1

    app.get_by_role("tab", name="Build").click()
    app.locator(".widget-toggle-button", has_text="fp32").first.click()
    # Long enough (batch 32, 10000 timed runs: tens of seconds) that the cell below runs mid-build.
    for label, value in (("Batch", "32"), ("Timing repeats", "10000")):
        field = app.locator(".widget-inline-hbox:visible", has_text=label).locator("input")
        field.fill(value)
        field.press("Enter")
    build = app.locator("button.widget-button", has_text="Build")
    build.click()
    page.wait_for_function("() => [...document.querySelectorAll('button.widget-button')]"
                           ".some(b => b.textContent.includes('Build') && b.disabled)", timeout=10_000)

    # A cell run while the build is in progress: the kernel answers, and sees the build busy.
    last = page.locator(".jp-Notebook .jp-Cell").last
    last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type("print('busy during cell:', app.controller.busy)")
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea-output", has_text="busy during cell: True").wait_for(timeout=30_000)

    app.locator(".progress-bar-success").wait_for(timeout=180_000)
    # the app shows the Results tab by itself when a build lands
    page.wait_for_function(
        "n => document.querySelectorAll('table.wb-runs tbody tr').length > n", arg=before, timeout=120_000)
    assert runs_rows.count() == before + 1
    assert app.locator("table.wb-runs tbody tr", has_text="b32").count() == 1
    plots = app.locator(".js-plotly-plot")
    plots.nth(2).wait_for(timeout=60_000)
    assert app.locator(".js-plotly-plot .xtitle", has_text="time per batch (ms)").count() >= 1
    assert app.locator(".js-plotly-plot .ytitle", has_text="SQNR").count() == 1
    assert app.locator(".js-plotly-plot .xtitle", has_text="latency").count() == 1
    assert app.locator(".wb-error").count() == 0
    log = app.locator(".wb-log div").first
    assert "done" in log.inner_text() or "profile" in log.inner_text() or "drift" in log.inner_text()
    shoot(page, app, "Results")
    news = page.get_by_role("button", name="No", exact=True)
    if news.count():
        news.first.click()  # JupyterLab's news prompt would cover the plots in the screenshot
