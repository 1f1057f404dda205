"""hfcl's metrics as offline ``evaluate`` modules, loadable by path from the installed package.

>>> from hfcl.eval.evaluate_modules import load
>>> rouge = load("hfcl_rouge")                       # evaluate.load(<package path>), no Hub access
>>> rouge.compute(predictions=["the cat sat"], references=["the cat sat on the mat"])["rougeL_recall"]
0.5

``evaluate.load("rouge")`` fetches its script from the Hub and fails offline; these modules only import hfcl.
Every metric of the registry (:mod:`hfcl.eval.metrics.registry`) whose first input is a per-example column also
loads by its name, through the ``hfcl_metric`` module (``load("forget_prob")`` = ``load("hfcl_metric",
"forget_prob")``), so a newly registered metric is an evaluate module at once.
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("hfcl_rouge", "hfcl_truth_ratio", "hfcl_forget_quality", "hfcl_mia_auc", "hfcl_continual", "hfcl_metric")


def module_path(name: str) -> str:
    """Folder of module ``name`` (pass it to ``evaluate.load``)."""
    if name not in MODULES:
        from ...errors import ConfigError

        raise ConfigError(f"Unknown evaluate module {name!r}; choose one of {', '.join(MODULES)}.")
    return str(Path(__file__).parent / name)


def registered_metrics() -> list[str]:
    """The registered metrics that load as evaluate modules by name (their first input is a per-example column)."""
    from ..metrics.registry import METRICS

    return [m.name for m in METRICS.values() if m.feature is not None and m.inputs]


def load(name: str, config_name: str | None = None, **kwargs):
    """``evaluate.load`` of one of :data:`MODULES` by path, or of a registered metric by its name."""
    import evaluate

    if name not in MODULES and name in registered_metrics():
        name, config_name = "hfcl_metric", name
    if config_name is not None:
        kwargs["config_name"] = config_name
    return evaluate.load(module_path(name), **kwargs)
