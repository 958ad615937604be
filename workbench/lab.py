"""Start JupyterLab on the workbench notebooks, bound to 127.0.0.1.

The notebooks ship inside the package (``workbench/notebooks``, the one copy; the repository's
top-level ``notebooks`` is a link to it). People run and edit their own copies: ``workbench lab``
copies them to a writable folder and never overwrites a copy someone has changed unless asked.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.runs.workspace import default_root
from workbench.samples import SAMPLES_ENV, sample_models

HOST = "127.0.0.1"
#: JupyterLab's news feed and update check reach the internet on the first load; a classroom may have none,
#: and each failed lookup is a console error.
OFFLINE = ["--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
DEFAULT_DIR = "workbench-notebooks"


def packaged_notebooks() -> list[Path]:
    return sorted((Path(__file__).parent / "notebooks").glob("*.ipynb"))


def copy_notebooks(target: Path, refresh: bool = False) -> list[Path]:
    """Copy the packaged notebooks into ``target``; returns the files written."""
    sources = packaged_notebooks()
    if not sources:
        raise WorkbenchError("This install has no notebooks in it.", "Reinstall onnx-workbench with its [lab] extra.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkbenchError(f"Cannot create '{target}': {exc.strerror}.",
                             "Pass a writable folder with --dir.") from exc
    written = []
    for source in sources:
        destination = target / source.name
        if refresh or not destination.exists():
            shutil.copyfile(source, destination)
            written.append(destination)
    return written


def lab_environment() -> dict[str, str]:
    """Absolute workspace and sample paths, so kernels find them whatever their working folder."""
    env = dict(os.environ)
    env["WORKBENCH_WORKSPACE"] = str(default_root().resolve())
    samples = sample_models()
    if samples and SAMPLES_ENV not in env:
        env[SAMPLES_ENV] = str(next(iter(samples.values())).parents[1].resolve())
    return env


def lab_command(root: Path, port: int | None = None, browser: bool = True,
                extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={HOST}",
               *OFFLINE]
    if port:
        command.append(f"--ServerApp.port={port}")
    if not browser:
        command.append("--no-browser")
    return command + list(extra)


def root_flags(extra: Sequence[str]) -> list[str]:
    """JupyterLab refuses to start as root without ``--allow-root``; workshops often run in containers as root."""
    if os.name == "posix" and os.geteuid() == 0 and "--allow-root" not in extra:
        print("running as root: passing --allow-root to JupyterLab", file=sys.stderr)
        return ["--allow-root"]
    return []


#: Signals that stop ``workbench lab``; each is passed on to JupyterLab as SIGTERM, which shuts its kernels down
#: (a SIGINT would make it ask for confirmation on a terminal that may not be there).
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_until_stopped(command: list[str], env: dict[str, str], grace_s: float = 20.0) -> int:
    """Run JupyterLab in the foreground; whatever stops this process stops it too, kernels and all."""
    server = subprocess.Popen(command, env=env)

    def forward(signum: int, frame: object) -> None:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        return server.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(grace_s)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def start_lab(folder: Path, port: int | None = None, browser: bool = True, refresh: bool = False,
              extra: Sequence[str] = ()) -> int:
    """Copy the notebooks, then run JupyterLab in the foreground until it (or this process) is stopped."""
    if importlib.util.find_spec("jupyterlab") is None or importlib.util.find_spec("ipywidgets") is None:
        raise WorkbenchError("JupyterLab or ipywidgets is not installed.",
                             "Install the lab extra: pip install 'onnx-workbench[cpu,lab]'.")
    written = copy_notebooks(folder, refresh)
    print(f"notebooks in {folder.resolve()} ({len(written)} copied, existing copies kept)", file=sys.stderr)
    extra = [*extra, *root_flags(extra)]
    return run_until_stopped(lab_command(folder.resolve(), port, browser, extra), lab_environment())
