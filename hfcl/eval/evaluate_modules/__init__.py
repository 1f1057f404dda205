"""hfcl's metrics as offline ``evaluate`` modules, loadable by path from the installed package.

>>> from hfcl.eval.evaluate_modules import load
>>> rouge = load("hfcl_rouge")                       # evaluate.load(<package path>), no Hub access
>>> rouge.compute(predictions=["the cat sat"], references=["the cat sat on the mat"])["rougeL_recall"]
0.5

``evaluate.load("rouge")`` fetches its script from the Hub and fails offline; these modules only import hfcl.
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("hfcl_rouge", "hfcl_truth_ratio", "hfcl_forget_quality", "hfcl_mia_auc", "hfcl_continual")


def module_path(name: str) -> str:
    """Folder of module ``name`` (pass it to ``evaluate.load``)."""
    if name not in MODULES:
        from ...errors import ConfigError

        raise ConfigError(f"Unknown evaluate module {name!r}; choose one of {', '.join(MODULES)}.")
    return str(Path(__file__).parent / name)


def load(name: str, **kwargs):
    """``evaluate.load`` of one of :data:`MODULES` by path."""
    import evaluate

    return evaluate.load(module_path(name), **kwargs)
