"""Evaluation: TOFU / MUSE suites, membership inference, memorisation and continual-learning metrics.

>>> from hfcl.eval import evaluate_model
>>> report = evaluate_model("target", suite="tofu", reference_log="auto")   # doctest: +SKIP
>>> report.aggregates["forget_quality"]                                      # doctest: +SKIP

Metrics are pure functions in :mod:`hfcl.eval.metrics`; suites share one teacher-forced scoring pass and one batched
generation pass (:mod:`hfcl.eval.scoring`); :class:`EvalReport` carries every number with its provenance.
Where definitions differ from OpenUnlearning's, and why: ``hfcl/eval/DIFFERENCES.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names -> defining submodule. Imported on first access (PEP 562), so `import hfcl.eval.definitions` (used by
# the hub's cards) and `import hfcl` stay light; `from hfcl.eval import evaluate_model` works as usual.
_EXPORTS = {
    "evaluate_model": "api", "with_reference": "api", "build_reference_log": "api",
    "reference_log_from_report": "api", "zoo_reference_log": "api", "load_for_eval": "api",
    "evaluate_models": "demo", "continual_report": "continual",
    "EvalReport": "report", "compare_rows": "report", "compare_table": "report", "markdown_table": "report",
    "print_reports": "report", "ReferenceLog": "reference_log", "EvalConfig": "suites", "SUITES": "suites",
    "DEFINITIONS": "definitions", "MetricDefinition": "definitions",
    "Metric": "metrics.registry", "register_metric": "metrics.registry", "METRICS": "metrics.registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
