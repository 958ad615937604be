"""What a laptop cannot hold is refused before it starts, with the batch or size that would fit."""

from __future__ import annotations

import re
from pathlib import Path

import onnx
import psutil
import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.data.loaders import load_npz
from workbench.errors import DataError, WorkbenchError
from workbench.memory.guard import check_timing_fits
from workbench.runs.pipeline import Pipeline, timing_feed


def test_a_batch_larger_than_the_evaluation_set_is_refused(cnn: Path, capfd: pytest.CaptureFixture) -> None:
    assert main(["run", str(cnn), "--batch", "1000"]) == 2  # the set has 360 samples: nothing is repeated
    err = capfd.readouterr().err
    assert "Batch 1000 is larger than the 360 evaluation samples of eval.npz" in err and "--batch 360" in err
    assert len(err.strip().splitlines()) == 1


def test_timing_that_would_not_fit_says_which_batch_does(
        resnet: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Room for about 60 MB more than this test process holds already.
    monkeypatch.setenv("WORKBENCH_MEMORY_GB", str((psutil.Process().memory_info().rss + 70e6) / 2**30))
    pipeline = Pipeline(workspace)
    with pytest.raises(WorkbenchError, match="nothing was started") as caught:
        pipeline.run(resnet, BuildOptions("fp32", batch=256, repeats=3))
    assert "Timing at batch 256 needs about" in str(caught.value)
    assert list((workspace / "artifacts").iterdir()) == []  # refused before anything was built
    fits = int(re.search(r"use --batch (\d+) or less", str(caught.value)).group(1))
    assert 1 <= fits < 256
    model, data = onnx.load(str(resnet)), load_npz(resnet.parent / "eval.npz")
    check_timing_fits(model, timing_feed(data, fits), fits)  # what the sentence offered passes the same check
    with pytest.raises(WorkbenchError):
        check_timing_fits(model, timing_feed(data, 2 * fits + 2), 2 * fits + 2)


def test_an_input_too_large_to_hold_is_named(tmp_path: Path, cnn: Path, capfd: pytest.CaptureFixture) -> None:
    model = onnx.load(str(cnn))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = dims[3].dim_value = 1_000_000  # convolutions take any image size
    onnx.save(model, str(tmp_path / "huge_input.onnx"))
    assert main(["run", str(tmp_path / "huge_input.onnx"), "--eval", "random:2"]) == 2
    err = capfd.readouterr().err
    assert "Input 'input' of shape [1, 1, 1000000, 1000000] takes 4.0 TB per sample" in err
    assert "ran out of memory" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(DataError, match="re-export the model"):
        Pipeline().run(tmp_path / "huge_input.onnx", BuildOptions("fp32", eval="random:1"))


def test_freed_memory_goes_back_to_the_system_before_more_engines_are_loaded() -> None:
    import numpy as np

    from workbench.memory.system import release_freed, rss_bytes

    held, pins = [], []
    for index in range(50_000):  # 8 kB each: the C heap, not mappings of their own
        held.append(np.ones(1000))
        if index % 8 == 0:  # small blocks kept between them: freeing the rest leaves no free heap top to shrink
            pins.append(bytearray(600))
    del held
    freed_but_held = rss_bytes()
    given_back = release_freed()
    assert given_back > 150e6 and rss_bytes() < freed_but_held - 150e6, (given_back, freed_but_held, rss_bytes())
    assert len(pins) == 6250
