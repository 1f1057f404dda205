"""An :class:`EvalReport` for a continual-learning run, from its accuracy matrix (what cards and the Space render)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import DataError
from ..utils.io import stable_hash
from ..utils.provenance import provenance
from . import metrics as M
from .definitions import definitions_for
from .report import EvalReport


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def continual_report(R, tasks: Sequence[str] | None = None, *, baseline: Sequence[float] | None = None,
                     joint: Sequence[float] | None = None,
                     forgetting_reference: M.continual.ForgettingReference = "max",
                     task_metric: str = "accuracy", model: dict[str, Any] | None = None, seed: int = 0,
                     notes: Sequence[str] = ()) -> EvalReport:
    """Continual-learning metrics of the accuracy matrix ``R`` (shape ``(T + 1, T)``, row 0 = the model before any
    task, row ``i`` = after training on tasks ``1..i``) as a report with suite ``"continual"``.

    ``tasks`` names the columns; ``baseline`` replaces ``R[0]`` as FWT's reference (e.g. a random-init model's
    scores); ``joint`` (scores of a jointly trained model) adds intransigence; ``task_metric`` says what the entries
    of ``R`` are. Undefined metrics (BWT, FWT and forgetting need two tasks) are ``None``.
    """
    arr = M.continual.as_matrix(R)
    T = arr.shape[1]
    tasks = list(tasks) if tasks is not None else [f"task{j + 1}" for j in range(T)]
    if len(tasks) != T:
        raise DataError(f"{len(tasks)} task names for {T} columns of the accuracy matrix.")
    values = M.continual_metrics(arr, baseline, joint, forgetting_reference)
    aggregates = {k: _none_if_nan(v) for k, v in values.items()}
    forgetting = M.forgetting_per_task(arr, reference=forgetting_reference).tolist() + [None]
    per_example = {
        "tasks": {"name": tasks, "before": arr[0].tolist(), "after_own_training": [float(arr[j + 1, j]) for j in
                                                                                  range(T)],
                  "final": arr[-1].tolist(), "forgetting": forgetting},
        "accuracy_matrix": {"R": arr.tolist()},
    }
    if joint is not None:
        per_example["tasks"]["intransigence"] = M.intransigence(arr, joint).tolist()
    info = provenance()
    return EvalReport(
        suite="continual", aggregates=aggregates, per_example=per_example, definitions=definitions_for(aggregates),
        model=dict(model or {}), seed=seed,
        data={"source": "accuracy_matrix", "tasks": tasks, "task_metric": task_metric,
              "fingerprint": stable_hash({"R": arr.tolist(), "tasks": tasks})},
        settings={"forgetting_reference": forgetting_reference,
                  "fwt_baseline": "base_model_row" if baseline is None else "given",
                  "baseline": None if baseline is None else np.asarray(baseline, dtype=float).tolist(),
                  "joint": None if joint is None else np.asarray(joint, dtype=float).tolist()},
        notes=list(notes), provenance={"versions": info["versions"], "hardware": info["hardware"],
                                       "created_at": info["created_at"]},
    )
