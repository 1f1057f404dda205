"""Evaluate several models side by side against one shared retain-model reference (what ``hfcl demo`` shows).

>>> from hfcl.eval.demo import evaluate_models
>>> reports = evaluate_models({"target": "target", "retain": "retain", "NPO": "runs/npo"})   # doctest: +SKIP
>>> print_reports(reports)                                                                   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..utils.logging import get_logger
from .api import (
    AUTO,
    cached_zoo_reference_log,
    evaluate_model,
    reference_log_from_report,
    resolve_reference,
    with_reference,
    zoo_reference_path,
)
from .report import EvalReport
from .suites import EvalConfig

logger = get_logger(__name__)

#: Settings that keep the demo quick on the embedded default (answers are at most ~10 tokens long there).
QUICK = {"retain_eval_size": 100, "max_new_tokens": 32}


def demo_config(suite: str = "tofu", forget_split: str = "forget10", **overrides: Any) -> EvalConfig:
    """The :class:`EvalConfig` of :func:`evaluate_models`: :data:`QUICK` settings, ``overrides`` on top."""
    return EvalConfig(suite=suite, forget_split=forget_split, **{**QUICK, **overrides})


def evaluate_models(models: Mapping[str, Any] | Sequence[str], world_config=None, forget_split: str = "forget10",
                    suite: str = "tofu", reference_log: Any = AUTO, config: EvalConfig | None = None,
                    progress: Callable[[str], None] | None = None, distributed: bool = False,
                    **overrides: Any) -> dict[str, EvalReport]:
    """Evaluate every model of ``models`` on one suite and return ``{name: EvalReport}`` in the same order.

    ``models`` maps display names to anything :func:`~hfcl.eval.evaluate_model` accepts (a zoo stage such as
    ``"target"`` or ``"retain"``, a run directory, an adapter folder, a Hub id, a ``(model, tokenizer)`` pair); a
    list of stage names or paths uses them as names. ``reference_log="auto"`` compares every model with the embedded
    retain model's reference log (cached): when that log is not cached yet and the ``"retain"`` stage is among the
    models, its evaluation *is* the log, so the retain model is evaluated once, not twice. ``config`` (default
    :func:`demo_config`, quick settings) or ``overrides`` set the suite's options; ``progress(name)`` is called
    before each model (e.g. to update a status line).
    """
    if not isinstance(models, Mapping):
        models = {str(m): m for m in models}
    config = config or demo_config(suite, forget_split, **overrides)
    reports: dict[str, EvalReport] = {}
    reference = None
    if reference_log is not None and str(reference_log) == AUTO:
        reference = cached_zoo_reference_log(config, world_config)
        retain_names = [name for name, spec in models.items() if isinstance(spec, str) and spec == "retain"]
        if reference is None and retain_names:
            name = retain_names[0]
            if progress:
                progress(name)
            own = evaluate_model("retain", config=config, world_config=world_config, distributed=distributed)
            reference = reference_log_from_report(own)
            reference.save(zoo_reference_path(config, world_config)[0])
            reports[name] = with_reference(own, reference)
    elif reference_log is not None:
        reference = reference_log
    if reference is None and reference_log is not None:
        reference = AUTO  # not cached and no retain stage among the models: evaluate_model builds it once
    for name, spec in models.items():
        if name in reports:
            continue
        if progress:
            progress(name)
        reports[name] = evaluate_model(spec, config=config, world_config=world_config, reference_log=reference,
                                       distributed=distributed)
        if reference == AUTO:  # built by the first evaluation: reuse the cached log for the others
            reference = resolve_reference(AUTO, config, reports[name].data["fingerprint"], world_config, distributed)
    return {name: reports[name] for name in models}
