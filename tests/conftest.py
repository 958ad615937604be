"""Shared fixtures: the real sample models and a throw-away workspace per test."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_models"


def sample(name: str) -> Path:
    path = SAMPLES / name / "model.onnx"
    if not path.is_file():
        pytest.skip(f"sample model {name} is missing; run scripts/train_samples.py")
    return path


def workbench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The command line as a user runs it: a fresh process, so nothing of the test's imports leaks in."""
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.fixture
def cnn() -> Path:
    return sample("digits_cnn")


@pytest.fixture
def resnet() -> Path:
    return sample("digits_resnet")


@pytest.fixture
def outlier() -> Path:
    return sample("digits_outlier")


@pytest.fixture
def vit() -> Path:
    return sample("digits_vit")


@pytest.fixture(autouse=True)
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own workspace, so no test sees another's cached runs."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("WORKBENCH_WORKSPACE", str(root))
    # The per-user timing lock would serialise test runs that several people start on one machine.
    monkeypatch.setenv("WORKBENCH_TIMING_LOCK", str(tmp_path / "timing.lock"))
    return root


@pytest.fixture
def cli_env(workspace: Path) -> dict[str, str]:
    return {**os.environ, "WORKBENCH_WORKSPACE": str(workspace)}


@pytest.fixture
def mount_tmpfs(tmp_path: Path):
    """Mount a tmpfs of a given size under the test's folder (another file system, or a small one).

    Skips with the reason where mounting is not allowed (it needs root or CAP_SYS_ADMIN).
    """
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("this system has no mount command, so no tmpfs can be mounted for the test")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({(done.stderr or done.stdout).strip()}); "
                        "the test needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def _jupyter_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(word in " ".join(child.cmdline()) for word in ("jupyterlab", "jupyter-lab", "ipykernel")):
                found.append(child)
    return found


@pytest.fixture(scope="session", autouse=True)
def no_jupyter_left_behind() -> Iterator[None]:
    """`make test` leaves no JupyterLab server or kernel running: whatever a test started, it stopped."""
    yield
    deadline = time.monotonic() + 20
    while (left := _jupyter_children()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    assert not left, f"tests left Jupyter processes running: {[p.pid for p in left]}"
