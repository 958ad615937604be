"""`workbench import-trtexec` end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "workbench" / "examples" / "trtexec"


def _workbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_json_output_with_sibling_layer_info():
    result = _workbench("import-trtexec", str(DATA / "resnet18_a100_qat.profile.json"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    records = json.loads((DATA / "resnet18_a100_qat.profile.json").read_text())[1:]
    assert [layer["name"] for layer in data["layers"]] == [r["name"] for r in records]
    assert data["total_ms"] == pytest.approx(sum(r["timeMs"] for r in records))
    first_conv = data["layers"][1]
    assert first_conv["onnx_nodes"] == ["QuantizeLinear_7", "Conv_9"]
    assert first_conv["precision"] == "INT8"  # so the sibling .graph.json was found
    assert {"name", "op_type", "precision", "time_ms", "share", "onnx_nodes"} <= set(first_conv)
    assert data["sparse_layers"] == []
    assert data["metadata"]["gpu"] == "NVIDIA A100 80GB PCIe"
    assert data["metadata"]["batch"] == 32


def test_readable_table_with_explicit_layer_info():
    result = _workbench(
        "import-trtexec",
        str(DATA / "mobilenet_v2_residuals_qat.profile.json"),
        "--layer-info",
        str(DATA / "mobilenet_v2_residuals_qat.graph.json"),
    )
    assert result.returncode == 0, result.stderr
    assert "NVIDIA TITAN RTX" in result.stdout
    copy_rows = [line for line in result.stdout.splitlines() if "Reformatting CopyNode" in line]
    assert len(copy_rows) == 1
    assert " Reformat " in copy_rows[0] and copy_rows[0].endswith("... -> -")  # long names are cut
    assert "QuantizeLinear_7, Conv_9, Clip_13" in result.stdout
    assert len(result.stdout.splitlines()) == 3 + 58


def test_bad_input_is_one_line_and_exit_code_2():
    result = _workbench("import-trtexec", str(DATA / "NOTICE.md"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: NOTICE.md is not valid JSON")
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
