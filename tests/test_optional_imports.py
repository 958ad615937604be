"""Optional packages are imported where used, so a machine without them still gets the workbench's
own explanation. ONNX Runtime is made unimportable in a fresh interpreter (``sys.modules[name] =
None`` makes ``import`` raise ImportError, exactly as when the package is absent)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WITHOUT_ORT = "import sys; sys.modules['onnxruntime'] = None\n"


def python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_backends_without_onnxruntime_prints_the_install_hint() -> None:
    done = python(WITHOUT_ORT + "from workbench.cli.main import main\nsys.exit(main(['backends']))")
    assert done.returncode == 0, done.stderr
    assert "onnxruntime-cpu" in done.stdout
    assert "ONNX Runtime is not installed: pip install 'onnx-workbench[cpu]'" in done.stdout
    assert "Traceback" not in done.stderr


def test_a_build_without_onnxruntime_says_so_in_one_line(cnn: Path, tmp_path: Path) -> None:
    done = python(WITHOUT_ORT + "from workbench.cli.main import main\nsys.exit(main(sys.argv[1:]))",
                  "run", str(cnn), "--eval", "random:4", "--workspace", str(tmp_path / "ws"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert "pip install 'onnx-workbench[cpu]'" in done.stderr


def test_import_workbench_loads_no_onnxruntime_until_a_build_starts() -> None:
    done = python(
        "import sys, workbench\n"
        "print(workbench.Pipeline, workbench.BuildOptions, workbench.plots, workbench.sample_models)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'onnxruntime', 'ipywidgets', 'openvino'}))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
