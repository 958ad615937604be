"""The HTML report: one self-contained file whose plots draw in a real browser with no network."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.report.html import write_report
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import Pipeline
from workbench.runs.run import Run
from workbench.runs.workspace import Workspace
from workbench.workflows.layer_drift import drift_for_run
from workbench.workflows.profile import profile_run

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def runs(cnn: Path, workspace: Path) -> list[Run]:
    pipeline = Pipeline()
    made = [pipeline.run(cnn, BuildOptions(precision, batch=4, repeats=5)) for precision in ("fp32", "fp16", "int8")]
    int8 = made[-1]
    profile_run(int8, BuildOptions(warmup=2, repeats=10), pipeline=pipeline)  # a real layer table, saved with the run
    drift = drift_for_run(int8, samples=16, pipeline=pipeline).table
    int8.tables["layer_drift"] = str(Path(int8.artifact).parent / "layer_drift.parquet")
    drift.to_parquet(int8.tables["layer_drift"])
    int8.tables["gone"] = str(workspace / "deleted-table.csv")
    pipeline.workspace.save_run(int8)
    return Workspace().runs()


def test_report_is_one_self_contained_file(runs: list[Run], tmp_path: Path) -> None:
    path = write_report(runs, tmp_path / "report.html")
    text = path.read_text()
    assert not re.search(r"<script[^>]+src=[\"']?https?:", text), "must not load scripts from the network"
    assert len(re.findall(r"<script[^>]*>\s*/\*\*\s*\n?\s*\* plotly\.js", text)) <= 1  # plotly.js embedded once
    assert "Plotly.newPlot" in text and "plotly.js v" in text
    for run in runs:
        assert run.run_id in text
    assert "workbench run sample_models/digits_cnn/model.onnx --precision int8 --calib" in text.replace(
        str(REPO) + "/", "")
    assert "gone table: missing" in text  # a vanished table is shown, not an error
    assert "slowest layers" in text and "time by op type" in text and "drift along the graph" in text


def test_report_cli_exports_csv_and_parquet(runs: list[Run], tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code = main(["report", "--model", "digits_cnn", "-o", str(out / "r.html"), "--csv", str(out / "runs.csv"),
                 "--parquet", str(out / "runs.parquet")])
    assert code == 0 and (out / "r.html").stat().st_size > 1_000_000  # plotly.js is inside
    csv, parquet = pd.read_csv(out / "runs.csv"), pd.read_parquet(out / "runs.parquet")
    assert list(csv["run_id"]) == list(parquet["run_id"]) == [r.run_id for r in runs]
    assert parquet["speedup"].tolist() == pytest.approx(runs_frame(runs)["speedup"].tolist())
    assert main(["report", runs[0].run_id[:8], "--csv", str(out / "one.csv")]) == 0
    assert list(pd.read_csv(out / "one.csv")["run_id"]) == [runs[0].run_id]
    assert main(["report", "--model", "no-such-model", "-o", str(out / "x.html")]) == 2
    assert "No runs of model" in capsys.readouterr().err


@pytest.mark.browser
def test_report_plots_render_offline_in_chromium(runs: list[Run], tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    path = write_report(runs, tmp_path / "report.html")
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            context = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            page.wait_for_selector(".plotly .main-svg", timeout=30_000)
            plots = page.locator(".js-plotly-plot").count()
            markers = page.locator(".js-plotly-plot .scatterlayer .point").count()
            bars = page.locator(".js-plotly-plot .barlayer .point").count()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert plots == 4  # the Pareto plot; the int8 run's slowest layers, time by op type, drift
    assert markers >= len(runs)  # one marker per run drawn on the Pareto plot
    assert bars > 0
    assert [url for url in requests if not url.startswith("file:")] == []
    shutil.copy(path, ARTIFACTS / "report.html")

