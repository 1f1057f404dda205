"""Continual-learning metrics from an accuracy matrix.

``R`` has shape ``(T + 1, T)``: ``R[0, j]`` is the model before any continual training (the base model) on task
``j``'s test set, and ``R[i, j]`` the score on task ``j`` after training on tasks ``1..i``. Tasks are 1-indexed in
the formulas (column ``j - 1`` in the array). Metrics that need two or more tasks return nan for ``T = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from ...errors import DataError

ForgettingReference = Literal["max", "max_all", "first"]


def as_matrix(R) -> np.ndarray:
    """Validate and return ``R`` as a float ``(T + 1, T)`` array."""
    arr = np.asarray(R, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1 or arr.shape[0] != arr.shape[1] + 1:
        raise DataError(f"The accuracy matrix must have shape (T + 1, T) with row 0 = before any task; got "
                        f"{arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise DataError("The accuracy matrix holds non-finite values.")
    return arr


def final_average_accuracy(R) -> float:
    """``ACC = (1/T) sum_j R[T, j]`` (Lopez-Paz & Ranzato 2017)."""
    arr = as_matrix(R)
    return float(arr[-1].mean())


def average_incremental_accuracy(R) -> float:
    """``A_inc = (1/T) sum_k (1/k) sum_{j<=k} R[k, j]`` (Rebuffi et al., iCaRL 2017)."""
    arr = as_matrix(R)
    T = arr.shape[1]
    return float(np.mean([arr[k, :k].mean() for k in range(1, T + 1)]))


def backward_transfer(R) -> float:
    """``BWT = (1/(T-1)) sum_{j<T} (R[T, j] - R[j, j])``; negative means forgetting."""
    arr = as_matrix(R)
    T = arr.shape[1]
    if T < 2:
        return math.nan
    return float(np.mean([arr[T, j - 1] - arr[j, j - 1] for j in range(1, T)]))


def forward_transfer(R, baseline: Sequence[float] | None = None) -> float:
    """``FWT = (1/(T-1)) sum_{j>=2} (R[j-1, j] - b_j)``.

    ``baseline=None`` uses ``b_j = R[0, j]``, the base model before continual training (the meaningful choice for a
    pretrained LLM, as EasyCL); pass the scores of a randomly initialised model for GEM's original definition.
    """
    arr = as_matrix(R)
    T = arr.shape[1]
    b = arr[0] if baseline is None else np.asarray(baseline, dtype=np.float64)
    if b.shape != (T,):
        raise DataError(f"baseline must hold one score per task ({T}), got shape {b.shape}.")
    if T < 2:
        return math.nan
    return float(np.mean([arr[j - 1, j - 1] - b[j - 1] for j in range(2, T + 1)]))


def forgetting_per_task(R, k: int | None = None, reference: ForgettingReference = "max") -> np.ndarray:
    """``f_j^k`` for tasks ``j < k`` (default ``k = T``).

    ``reference="max"`` (Chaudhry et al. 2018): ``max_{l in 1..k-1} R[l, j] - R[k, j]``; ``"max_all"`` (Mammoth,
    PILOT): the max includes row ``k``, so forgetting is never negative; ``"first"`` (Avalanche): ``R[j, j] - R[k, j]``,
    the score right after learning task ``j``.
    """
    arr = as_matrix(R)
    T = arr.shape[1]
    k = T if k is None else k
    if not 1 <= k <= T:
        raise DataError(f"k must be in 1..{T}, got {k}.")
    out = []
    for j in range(1, k):
        column = arr[:, j - 1]
        if reference == "max":
            best = column[1:k].max()
        elif reference == "max_all":
            best = column[1:k + 1].max()
        elif reference == "first":
            best = column[j]
        else:
            raise DataError(f"reference must be 'max', 'max_all' or 'first', got {reference!r}.")
        out.append(best - column[k])
    return np.asarray(out, dtype=np.float64)


def average_forgetting(R, k: int | None = None, reference: ForgettingReference = "max") -> float:
    """``F_k = (1/(k-1)) sum_{j<k} f_j^k`` (see :func:`forgetting_per_task` for the reference options)."""
    per_task = forgetting_per_task(R, k, reference)
    return float(per_task.mean()) if per_task.size else math.nan


def intransigence(R, joint: Sequence[float]) -> np.ndarray:
    """``I_k = a*_k - R[k, k]`` per task, with ``a*`` the scores of a model trained jointly on all tasks."""
    arr = as_matrix(R)
    T = arr.shape[1]
    a = np.asarray(joint, dtype=np.float64)
    if a.shape != (T,):
        raise DataError(f"joint must hold one score per task ({T}), got shape {a.shape}.")
    return np.asarray([a[k - 1] - arr[k, k - 1] for k in range(1, T + 1)], dtype=np.float64)


def continual_metrics(R, baseline: Sequence[float] | None = None, joint: Sequence[float] | None = None,
                      forgetting_reference: ForgettingReference = "max") -> dict[str, float]:
    """Every metric above in one dict (``intransigence`` only with ``joint``)."""
    out = {
        "final_average_accuracy": final_average_accuracy(R),
        "average_incremental_accuracy": average_incremental_accuracy(R),
        "backward_transfer": backward_transfer(R),
        "forward_transfer": forward_transfer(R, baseline),
        "average_forgetting": average_forgetting(R, reference=forgetting_reference),
    }
    if joint is not None:
        out["intransigence"] = float(intransigence(R, joint).mean())
    return out
