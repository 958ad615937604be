"""The Graph panel: Netron serves the chosen variant on 127.0.0.1 only, embedded in the panel."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import netron
import psutil

from workbench.runs.pipeline import Pipeline
from workbench.ui.app import Workbench
from workbench.ui.netron_server import HOST


def listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_variant_served_on_loopback_and_embedded(cnn: Path) -> None:
    run = Pipeline().run(cnn, "int8", repeats=3)
    app = Workbench(cnn)
    assert [value for _, value in app.graph.variant.options] == [str(cnn), run.artifact]
    app.graph.variant.value = run.artifact
    url = app.graph.show()
    try:
        assert url == f"http://127.0.0.1:{app.graph.port}/"
        assert listening_addresses(app.graph.port) == {HOST}
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert "netron" in page.lower() and '<meta name="file" content="/data/model.onnx">' in page
        served = urllib.request.urlopen(f"{url}data/model.onnx", timeout=10).read()
        assert served == Path(run.artifact).read_bytes()
        html = app.graph.view.outputs[0]["data"]["text/html"]
        assert f"<iframe src='{url}'" in html and "consent=" in html
        assert "served on 127.0.0.1 only" in app.graph.message.value
        first_port = app.graph.port
        app.graph.variant.value = str(cnn)
        app.graph.show()
        deadline = time.monotonic() + 5  # netron's loop notices the stop within its 0.25 s poll
        while listening_addresses(first_port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_addresses(first_port) == set()  # the previous model's server was stopped
    finally:
        netron.stop((HOST, app.graph.port))


def test_show_without_a_model_says_what_to_do() -> None:
    app = Workbench()
    assert app.graph.show() is None
    assert "Open one in the Model tab" in app.graph.message.value
