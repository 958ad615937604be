"""What goes wrong outside the workbench's control gets one sentence with the cause and the remedy.

Read-only and full disks, malformed `random:N`, decompression bombs: exit 2, one `error:` line,
no library traceback (that is what --debug is for), and no earlier run lost.
"""

from __future__ import annotations

import errno
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import pytest

from workbench.build_options import BuildOptions
from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.progress import ProgressEvent
from workbench.runs.pipeline import Pipeline


def one_error_line(capfd: pytest.CaptureFixture) -> str:
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and "unexpected" not in err, err
    return err


def fill(folder: Path) -> None:
    """Write until the file system says it is full."""
    with open(folder / "filler", "wb") as file:
        try:
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_a_read_only_workspace_is_named_as_such_not_damaged(
        mount_tmpfs, cnn: Path, capfd: pytest.CaptureFixture) -> None:
    disk = mount_tmpfs("disk", "64m")
    workspace = disk / "workspace"
    Pipeline(workspace).run(cnn, BuildOptions("fp32", batch=4, repeats=3))
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    capfd.readouterr()
    assert main(["run", str(cnn), "--batch", "2", "--workspace", str(workspace)]) == 2
    err = one_error_line(capfd)
    assert "read-only" in err and "damaged" not in err and "move it aside" not in err


def test_a_full_disk_while_saving_the_run_says_so_and_keeps_earlier_runs(mount_tmpfs, cnn: Path) -> None:
    disk = mount_tmpfs("disk", "8m")
    pipeline = Pipeline(disk / "workspace")
    earlier = pipeline.run(cnn, BuildOptions("fp32", batch=4, repeats=3))

    def fill_once_built(event: ProgressEvent) -> None:
        if event.step == "time" and not (disk / "filler").exists():
            fill(disk)

    with pytest.raises(WorkbenchError) as caught:
        pipeline.run(cnn, BuildOptions("fp16", batch=4, repeats=3), progress=fill_once_built)
    text = str(caught.value)
    assert "is full" in text and "free some space" in text and "damaged" not in text and "\n" not in text
    (disk / "filler").unlink()
    assert [run.run_id for run in pipeline.runs()] == [earlier.run_id]  # the earlier run is intact
    assert len(list((disk / "workspace" / "artifacts").iterdir())) == 1  # the unsaved variant was taken back


@pytest.mark.parametrize("size", ["500k", "750k"])
def test_a_full_disk_during_int8_is_one_sentence_without_onnxruntime_traceback(
        mount_tmpfs, cnn: Path, size: str, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = mount_tmpfs("disk", size)
    monkeypatch.setattr(tempfile, "tempdir", str(disk))  # full wherever a build's temporary files go
    capfd.readouterr()
    assert main(["run", str(cnn), "--precision", "int8", "--batch", "4", "--workspace", str(disk / "ws")]) == 2
    err = one_error_line(capfd)
    assert "is full" in err and "Model Optimization Failed" not in err


@pytest.mark.parametrize("source", ["random:abc", "random:-5", "random:0"])
def test_a_malformed_random_count_says_how_to_write_it(source: str, cnn: Path, capfd: pytest.CaptureFixture) -> None:
    assert main(["run", str(cnn), "--eval", source]) == 2
    assert "write it as random:N" in one_error_line(capfd)


def png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG that declares ``width`` x ``height`` pixels in a few bytes (what a decompression bomb looks like)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_image_is_refused_in_one_sentence(
        tmp_path: Path, cnn: Path, capfd: pytest.CaptureFixture) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    png_header_only(folder / "huge.png", 20000, 20000)
    assert main(["run", str(cnn), "--eval", str(folder)]) == 2
    err = one_error_line(capfd)
    assert "'huge.png' has more pixels than" in err and "shrink it" in err
