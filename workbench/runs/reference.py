"""One FP32 reference per model, backend and batch, shared by every run of that model there.

Each run still times FP32 beside its variant, in the same interleaved rounds, and its speed-up is
that ratio. But the reference's absolute time drifts from run to run (another process, a clock
change), so latencies taken from different runs disagree with their speed-ups: a variant can show
a lower latency and a lower speed-up than its neighbour. The first reference measured for a
(model, backend, batch) is stored in the workspace; each run's table latency is that stored
reference divided by the run's own side-by-side speed-up, so every row of a model, backend and
batch sits on one time scale and latency and speed-up always order the rows the same way.
The raw medians of each run stay in its record (``latency_ms``, ``reference_latency_ms``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from workbench.files import write_json_atomically
from workbench.measure.latency import LatencyStats

REFERENCES_FILE = "references.json"


def reference_key(model_digest: str, backend: str, batch: int) -> str:
    return f"{model_digest}/{backend}/b{batch}"


class References:
    """``<workspace>/references.json``: ``{key: {"median": ms, "p90": ms, "repeats": n, "created": t}}``."""

    def __init__(self, workspace_root: str | Path) -> None:
        self.path = Path(workspace_root) / REFERENCES_FILE

    def _read(self) -> dict[str, dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def get(self, key: str) -> dict | None:
        return self._read().get(key)

    def settle(self, key: str, measured: LatencyStats) -> dict:
        """The stored reference for ``key``; the first measurement becomes it."""
        stored = self._read()
        if key not in stored:
            stored[key] = {"median": measured.median, "p90": measured.p90, "repeats": measured.repeats,
                           "created": time.time()}
            write_json_atomically(self.path, stored)
        return stored[key]
