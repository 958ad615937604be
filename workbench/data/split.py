"""The confirmation split: the search chooses on one part of the evaluation data and is confirmed on the other.

A pick judged on the samples it was chosen on is flattered by them; the same pick judged on samples
the search never looked at says whether its budget holds on new data. The split is seeded, so the
same data always splits the same way, and stratified by FP32's predicted class where the task has
classes, so both parts hold every class in the same proportion.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

SEED = 0
SEARCH_SHARE = 0.5


def confirmation_split(samples: int, classes: np.ndarray | None = None, seed: int = SEED,
                       share: float = SEARCH_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Sorted sample indices of the search part and the confirmation part.

    Stratified by ``classes`` where every class has at least two samples (one cannot be split);
    otherwise a plain seeded shuffle.
    """
    if samples < 2:
        raise ValueError("a confirmation split needs at least two samples")
    indices = np.arange(samples)
    stratify = None
    if classes is not None and len(classes) == samples:
        _, counts = np.unique(classes, return_counts=True)
        stratify = classes if counts.min() >= 2 and len(counts) <= samples * min(share, 1 - share) else None
    search, confirm = train_test_split(indices, train_size=share, random_state=seed, stratify=stratify)
    return np.sort(search), np.sort(confirm)
