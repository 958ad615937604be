"""`workbench lab`: notebooks copied to a writable folder, JupyterLab bound to 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from workbench.cli.main import build_parser
from workbench.lab import copy_notebooks, lab_command, lab_environment, packaged_notebooks

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_notebooks_are_package_data_and_the_top_level_folder_is_the_same_files() -> None:
    names = {p.name for p in packaged_notebooks()}
    assert {"quickstart.ipynb", "workshop_1_quantization.ipynb", "tensorrt_profile_explorer.ipynb"} <= names
    assert (REPO / "notebooks").resolve() == (REPO / "workbench" / "notebooks").resolve()
    for path in packaged_notebooks():
        assert json.loads(path.read_text())["nbformat"] == 4


def test_copies_are_made_once_and_edits_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "nb"
    written = copy_notebooks(target)
    assert {p.name for p in written} == {p.name for p in packaged_notebooks()}
    edited = target / "quickstart.ipynb"
    edited.write_text("{}")
    assert copy_notebooks(target) == []
    assert edited.read_text() == "{}"
    copy_notebooks(target, refresh=True)
    assert edited.read_text() != "{}"


def test_lab_binds_loopback_and_kernels_find_workspace_and_samples(tmp_path: Path, workspace: Path) -> None:
    command = lab_command(tmp_path, port=9999, browser=False)
    assert "--ServerApp.ip=127.0.0.1" in command and f"--ServerApp.root_dir={tmp_path}" in command
    assert "--no-browser" in command and "--ServerApp.port=9999" in command
    env = lab_environment()
    assert Path(env["WORKBENCH_WORKSPACE"]) == workspace.resolve()
    assert (Path(env["WORKBENCH_SAMPLES"]) / "digits_cnn" / "model.onnx").is_file()


def test_lab_is_a_cli_command() -> None:
    args = build_parser().parse_args(["lab", "--no-browser", "--port", "8899"])
    assert args.command == "lab" and args.no_browser and args.port == 8899


def leftovers(marker: str) -> list[str]:
    """Processes whose command line names ``marker`` (this test's temporary folder)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in " ".join(process.info["cmdline"] or []):
                found.append(f"{process.info['pid']}: {' '.join(process.info['cmdline'])[:200]}")
    return found


def test_workbench_lab_serves_the_notebooks_on_loopback_and_sigterm_stops_it_all(
        tmp_path: Path, workspace: Path) -> None:
    """As root too (it passes --allow-root by itself); SIGTERM to `workbench lab` leaves no server or kernel."""
    port = free_port()
    folder = tmp_path / "my-notebooks"
    command = [sys.executable, "-m", "workbench", "lab", "--no-browser", "--port", str(port), "--dir", str(folder)]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTER_TOKEN": "t"}
    log = tmp_path / "lab.log"
    with log.open("w") as sink:
        lab = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                contents = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token=t", timeout=2))
                break
            except OSError:
                assert lab.poll() is None and time.monotonic() < deadline, "workbench lab did not start"
                time.sleep(0.5)
        assert "quickstart.ipynb" in {item["name"] for item in contents["content"]}
        listening = {c.laddr.ip for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}
        start = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels?token=t", data=b"{}", method="POST")
        kernel = json.load(urllib.request.urlopen(start, timeout=30))
        assert kernel["id"]
        assert len(leftovers(str(tmp_path))) >= 3  # workbench lab, JupyterLab, the kernel
    finally:
        lab.send_signal(signal.SIGTERM)
        lab.wait(60)
    deadline = time.monotonic() + 15
    while leftovers(str(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert leftovers(str(tmp_path)) == []
    assert (folder / "quickstart.ipynb").is_file()
    if os.geteuid() == 0:
        assert "passing --allow-root" in log.read_text()
