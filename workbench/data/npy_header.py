"""What an .npy or .npz holds, read from its headers before a byte of data is loaded.

An .npz is a zip archive: 1.5 MB of zeros can declare 1.5 GB of arrays, and ``np.load`` would
inflate them all. Each array's header states its dtype and shape, so the total is known up front
and a file that would not fit in ``WORKBENCH_MEMORY_GB`` is refused with its size; a header that
cannot be parsed is named as such, not mistaken for pickled objects.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

from workbench.errors import DataError
from workbench.memory.guard import readable_bytes
from workbench.memory.system import available_bytes


def _declared_bytes(handle: BinaryIO, what: str) -> int:
    """Bytes the array in ``handle`` declares; DataError on a malformed header or pickled objects."""
    try:
        version = npy_format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(handle)
        else:
            shape, _, dtype = npy_format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise DataError(f"{what} has a malformed NumPy header ({' '.join(str(exc).split())[:200]}), so it was "
                        "not loaded;", "write it again with np.save / np.savez.") from exc
    if dtype.hasobject:
        raise DataError(f"{what} holds pickled Python objects, which are never loaded (they can run code).",
                        "Save plain numeric arrays with np.save(path, array) / np.savez(path, input=array).")
    return int(np.prod(shape, dtype=np.float64)) * dtype.itemsize


def _refuse_if_too_big(declared: int, what: str) -> None:
    room = available_bytes()
    if declared > room:
        raise DataError(f"{what} declares {readable_bytes(declared)} of arrays, more than the "
                        f"{readable_bytes(room)} this build may use (WORKBENCH_MEMORY_GB), so it was not loaded;",
                        "use fewer samples in the file, or raise WORKBENCH_MEMORY_GB on a machine with more memory.")


def check_npy(path: Path) -> None:
    """Refuse an .npy whose header is malformed, holds objects, or declares more than memory allows."""
    with open(path, "rb") as handle:
        _refuse_if_too_big(_declared_bytes(handle, f"'{path.name}'"), f"'{path.name}'")


def check_npz(path: Path) -> None:
    """The same for every array of an .npz, summed: they are all loaded together."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for member in archive.namelist():
                if member.endswith(".npy"):
                    with archive.open(member) as handle:
                        total += _declared_bytes(handle, f"Array '{member[:-4]}' in '{path.name}'")
    except zipfile.BadZipFile as exc:
        raise DataError(f"'{path.name}' is not a readable .npz archive: {exc}.",
                        "Write it with np.savez(path, <input name>=array, labels=array).") from exc
    _refuse_if_too_big(total, f"'{path.name}'")
