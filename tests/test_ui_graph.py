"""The Graph panel: the chosen variant served to Netron on 127.0.0.1 only, privately, with no analytics."""

from __future__ import annotations

import http.client
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from workbench.build_options import BuildOptions
from workbench.runs.pipeline import Pipeline
from workbench.ui.app import Workbench
from workbench.ui.netron_server import HOST, GraphServer

CHROMIUM = Path("/usr/bin/chromium")


def listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def get(port: int, path: str, host: str | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host or f"{HOST}:{port}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_variant_served_on_loopback_behind_a_token_and_embedded(cnn: Path) -> None:
    run = Pipeline().run(cnn, BuildOptions("int8", repeats=3))
    app = Workbench(cnn)
    assert [value for _, value in app.graph.variant.options] == [str(cnn), run.artifact]
    app.graph.variant.value = run.artifact
    url = app.graph.show()
    server = app.graph.server
    try:
        assert url == f"http://127.0.0.1:{server.port}/{server.token}/" and len(server.token) >= 32
        assert listening_addresses(server.port) == {HOST}
        page = urllib.request.urlopen(url, timeout=10).read().decode()
        assert '<meta name="version" content="0.0.0">' in page  # Netron's own switch: no analytics
        assert '<meta name="file" content="data/model.onnx">' in page
        served = urllib.request.urlopen(f"{url}data/model.onnx", timeout=10).read()
        assert served == Path(run.artifact).read_bytes()
        html = app.graph.view.outputs[0]["data"]["text/html"]
        assert f"<iframe src='{url}'" in html and "cookie" not in html  # Netron's consent is the user's to give
        assert "served on 127.0.0.1 only" in app.graph.message.value
        first = server
        app.graph.variant.value = str(cnn)
        app.graph.show()
        deadline = time.monotonic() + 5
        while listening_addresses(first.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert listening_addresses(first.port) == set()  # the previous model's server was stopped
    finally:
        app.graph.server.stop()


def test_requests_without_the_token_or_from_another_host_are_refused(cnn: Path) -> None:
    server = GraphServer(cnn)
    try:
        token = server.token
        assert get(server.port, f"/{token}/")[0] == 200
        assert get(server.port, f"/{token}/data/model.onnx")[1] == cnn.read_bytes()
        assert get(server.port, f"/{token}/", host=f"localhost:{server.port}")[0] == 200
        for path in ("/", "/index.html", "/data/model.onnx", f"/{token[:-1]}/data/model.onnx", "/x/data/model.onnx"):
            status, body = get(server.port, path)
            assert status == 404 and cnn.read_bytes() not in body, path
        for host in ("evil.example.com", f"evil.example.com:{server.port}", f"{HOST}:1"):  # DNS rebinding
            assert get(server.port, f"/{token}/data/model.onnx", host=host)[0] == 403, host
        assert get(server.port, f"/{token}/../../../etc/passwd")[0] == 404
        assert get(server.port, f"/{token}/data/calib.npz")[0] == 404  # only the model's own files
    finally:
        server.stop()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_graph_page_in_chromium_asks_for_consent_and_never_leaves_loopback(cnn: Path) -> None:
    from playwright.sync_api import sync_playwright

    server = GraphServer(cnn)
    url = f"http://{HOST}:{server.port}/{server.token}/"
    requested: list[str] = []
    blocked: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--no-first-run"],
            )
            try:
                page = browser.new_page()
                page.on("request", lambda request: requested.append(request.url))
                page.on("console", lambda message: blocked.append(message.text)
                        if "Content Security Policy" in message.text else None)
                page.goto(url)
                accept = page.get_by_role("button", name="Accept")  # Netron's own cookie prompt, shown
                accept.wait_for(timeout=30_000)
                accept.click()
                page.locator("#canvas g.node").first.wait_for(timeout=60_000)  # the graph was drawn
                assert page.locator("#canvas g.node").count() > 5
                page.wait_for_timeout(1500)  # anything the page sends after drawing is recorded too
                assert any(c["name"] == "consent" for c in page.context.cookies())  # the user's answer, kept
            finally:
                browser.close()
    finally:
        server.stop()
    outside = [u for u in requested if urllib.parse.urlsplit(u).hostname not in (HOST, None)
               and not u.startswith(("data:", "blob:"))]
    assert requested and outside == [] and blocked == []  # none attempted, so the CSP had nothing to block
    assert all("ipinfo.io" not in u and "google" not in u for u in requested)
