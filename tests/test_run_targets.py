"""`workbench runs` and `show` say where each run was timed once the runs come from more than one target."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.cli.runs_text import format_table
from workbench.runs.format import THIS_MACHINE
from workbench.runs.frame import runs_frame
from workbench.runs.pipeline import Pipeline

QUICK = BuildOptions(repeats=1, warmup=0)


def test_the_runs_table_has_a_class_column_only_where_runs_come_from_several_targets(
        cnn: Path, workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    here = Pipeline(workspace).run(cnn, QUICK)
    assert "hardware class" not in format_table(runs_frame([here]))  # one target: nothing to tell apart
    # The same spec as a node of class-a times it (the target a cluster node gives its pipeline).
    there = Pipeline(workspace, target={"hardware_class": "class-a", "machine": socket.gethostname()}).run(cnn, QUICK)
    assert there.run_id != here.run_id
    assert main(["runs"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert "hardware class" in header and "node" not in header.split()
    by_id = {row.split()[0]: row for row in rows}
    assert THIS_MACHINE in by_id[here.run_id] and "class-a" in by_id[there.run_id]
    assert header.index("backend") < header.index("hardware class") < header.index("latency")
    assert main(["show", there.run_id]) == 0
    shown = capsys.readouterr().out
    assert f"timed on      class-a ({socket.gethostname()}), against that node's own FP32" in shown
    assert main(["show", here.run_id]) == 0
    assert "timed on" not in capsys.readouterr().out
