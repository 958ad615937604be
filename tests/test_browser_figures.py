"""After the quickstart, the Results tab, the Sweep tab and the report as a browser draws them.

Read from the figures Chromium actually laid out (plotly's own ``_fullLayout`` and the tick labels it
drew): no two layer labels alike, no latency axis below 0 ms, the FP32 reference on every latency
chart, and the same speed-up digits in the app's table and the report's. Screenshots go to
test-artifacts/ (or ``WORKBENCH_SHOTS``) so a person can look at them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from playwright import sync_api
from test_browser_lab import ARTIFACTS, CHROMIUM, TOKEN, lab  # noqa: F401  (lab is a fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]

SHOTS = Path(os.environ.get("WORKBENCH_SHOTS", ARTIFACTS))

#: Every drawn plotly figure: its axis titles and ranges, its tick labels and its trace names.
FIGURES_JS = """root => [...root.querySelectorAll('.js-plotly-plot')].map(gd => ({
    title: (gd._fullLayout.title || {}).text || '',
    x: {title: gd._fullLayout.xaxis.title.text || '', range: gd._fullLayout.xaxis.range},
    y: {title: gd._fullLayout.yaxis.title.text || '', range: gd._fullLayout.yaxis.range},
    yticks: [...gd.querySelectorAll('.yaxislayer-above .ytick text')].map(t => t.textContent),
    xticks: [...gd.querySelectorAll('.xaxislayer-above .xtick text')].map(t => t.textContent),
    traces: gd._fullData.map(t => t.name),
}))"""


#: True once at least ``n`` figures are drawn and every drawn one has data.
DRAWN_JS = """n => { const plots = [...document.querySelectorAll('.js-plotly-plot')];
    return plots.length >= n && plots.every(gd => gd._fullData && gd._fullData.length > 0); }"""


def check_figures(figures: list[dict], where: str) -> None:
    """The checks every face's charts must pass."""
    assert figures, f"no chart drawn in {where}"
    for figure in figures:
        for axis in ("x", "y"):
            if "ms" in figure[axis]["title"] and figure[axis]["range"]:
                assert figure[axis]["range"][0] >= 0, (where, figure["title"], figure[axis])
        if "layer" in figure["y"]["title"]:  # a per-layer bar chart: one label per bar, never two alike
            assert len(set(figure["yticks"])) == len(figure["yticks"]) > 0, (where, figure["yticks"])
        if "layer" in figure["x"]["title"]:
            assert len(set(figure["xticks"])) == len(figure["xticks"]), (where, figure["xticks"])
        if figure["x"]["title"].startswith("latency per sample"):
            assert any(name.startswith("FP32 reference") for name in figure["traces"]), (where, figure["traces"])
            if "agreement" in figure["y"]["title"] or "accuracy" in figure["y"]["title"]:
                assert figure["y"]["range"][1] <= 1.0 + 1e-9, (where, figure["y"])


def run_cell(page: sync_api.Page, code: str, done_text: str) -> None:
    last = page.locator(".jp-Notebook .jp-Cell").last
    last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea-output", has_text=done_text).wait_for(timeout=600_000)


@pytest.mark.timeout(1800)
def test_results_sweep_and_report_charts_read_right(lab: str) -> None:  # noqa: F811
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        try:
            page.goto(f"{lab}/lab/tree/quickstart.ipynb?token={TOKEN}")
            page.locator(".jp-Notebook").wait_for(timeout=60_000)
            with contextlib.suppress(sync_api.TimeoutError):
                page.locator(".jp-Dialog").get_by_role("button", name="Select", exact=True).click(timeout=15_000)
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
            app = page.locator(".jp-OutputArea-output .widget-tab").first
            app.wait_for(timeout=120_000)
            page.locator(".jp-RenderedText", has_text="vs FP32").filter(has_text="int8 · b1").wait_for(
                timeout=600_000)
            page.locator(".jp-OutputArea-output table.dataframe:not(.wb-runs)").wait_for(timeout=60_000)

            app.get_by_role("tab", name="Results").click()
            app.locator(".js-plotly-plot").nth(2).wait_for(timeout=120_000)
            page.wait_for_function(DRAWN_JS, arg=3, timeout=120_000)  # every slot holds its figure, not a blank
            page.wait_for_timeout(1000)
            check_figures(app.evaluate(FIGURES_JS), "Results tab")
            app.screenshot(path=str(SHOTS / "results-tab.png"))
            speed_cells = app.locator("table.wb-runs tbody tr").all_inner_texts()

            run_cell(page, "sweep = app.sweep(BuildOptions(repeats=5), precisions=('fp32', 'int8')); "
                           "print('swept', len(sweep.runs))", "swept 2")
            app.get_by_role("tab", name="Sweep").click()
            page.wait_for_timeout(800)
            sweep_table = app.locator("table.wb-sweep")
            headers = sweep_table.locator("th").all_inner_texts()
            assert "latency (ms/batch)" in headers and "run_id" not in headers and "loss_basis" not in headers
            app.screenshot(path=str(SHOTS / "sweep-tab.png"))

            run_cell(page, "from workbench.report.html import write_report\n"
                           "print('report', write_report(app.results.runs, 'report.html').name)", "report report.html")
            report = browser.new_page(viewport={"width": 1300, "height": 1800})
            report.goto(f"{lab}/files/report.html?token={TOKEN}")
            report.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            report.wait_for_function(DRAWN_JS, arg=1, timeout=60_000)
            report.wait_for_timeout(1000)
            check_figures(report.locator("body").evaluate(FIGURES_JS), "report")
            report_rows = report.locator("table tbody tr").all_inner_texts()
            for row in speed_cells:  # the app's and the report's speed-ups: the same digits
                speedup = next(cell for cell in row.split("\t") if cell.endswith("x"))
                assert any(speedup in line for line in report_rows), (speedup, report_rows)
            report.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        finally:
            page.screenshot(path=str(SHOTS / "quickstart-after.png"), full_page=True)
            browser.close()
