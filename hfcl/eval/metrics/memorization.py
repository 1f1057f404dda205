"""Token-level memorisation from teacher-forced greedy predictions (``argmax == label`` per answer token)."""

from __future__ import annotations

import numpy as np


def exact_memorization(correct) -> float:
    """Share of answer tokens whose teacher-forced argmax equals the label (nan for an empty answer)."""
    arr = np.asarray(correct, dtype=bool)
    return float(arr.mean()) if arr.size else float("nan")


def extraction_strength(correct) -> float:
    """``1 - k*/n``: ``k*`` is the shortest prefix after which the model reproduces the rest of the answer greedily.

    ``k* = 0`` (everything predicted) gives 1; a wrong last token gives ``k* = n`` and 0. OpenUnlearning stops its
    search at ``k = n - 1`` and so reports ``1/n`` instead of 0 when even the last token is wrong; we use the
    definition (Carlini et al.'s extraction with a k-token prefix). Nan for an empty answer.
    """
    arr = np.asarray(correct, dtype=bool)
    n = arr.size
    if n == 0:
        return float("nan")
    wrong = np.flatnonzero(~arr)
    k_star = int(wrong[-1]) + 1 if wrong.size else 0
    return 1.0 - k_star / n
