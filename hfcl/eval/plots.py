"""PNG plots of reports (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .reference_log import ReferenceLog
from .report import EvalReport


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_ZOO_ENTRY = re.compile(r"^(base-v2|base|target|retain)(?:-forget\d+)?-[0-9a-f]{8,}$")


def _short(source: Any, revision: Any = None) -> str | None:
    """Stage or run name of one model source: ``"target"``, ``"ga"`` for ``/tmp/x/out/ga``, ``"org/model"``."""
    from ..zoo.build import MODEL_STAGES

    if isinstance(revision, str) and revision.startswith("zoo:"):
        match = _ZOO_ENTRY.match(revision[4:])
        if match:
            return match.group(1)
    if source is None:
        return None
    text = str(source).rstrip("/\\")
    if text in MODEL_STAGES:
        return text
    name = Path(text).name
    match = _ZOO_ENTRY.match(name)
    if match:  # a zoo cache folder
        return match.group(1)
    local = text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") != 1 or os.path.exists(text)
    return (name or text) if local else text  # "org/model" stays a Hub id


def model_label(model: Mapping[str, Any] | None) -> str:
    """How plots name a model: its zoo stage or run folder name, never a local path. ``model`` is a report's
    ``model`` identity (``id``, ``revision``, ``adapter_id``): an adapter reads ``"ga (on target)"``."""
    model = model or {}
    base = _short(model.get("id"), model.get("revision"))
    adapter = _short(model.get("adapter_id"))
    if adapter:
        return f"{adapter} (on {base})" if base else adapter
    return base or "model"


def write_plots(report: EvalReport, out_dir: str | os.PathLike, reference: ReferenceLog | None = None) -> list[Path]:
    """Write ``aggregates.png`` (metrics in [0, 1]), ``truth_ratio.png`` (forget-set truth ratios, with the retain
    model's when a reference log is given) and ``membership.png`` (Min-K% scores, forget vs holdout)."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bounded = {k: v for k, v in ((k, report.aggregates[k]) for k in report.ordered_metrics())
               if v is not None and 0 <= v <= 1}
    if bounded:
        fig, ax = plt.subplots(figsize=(8, 0.3 * len(bounded) + 1.2))
        ax.barh(list(bounded)[::-1], list(bounded.values())[::-1], color="#4c72b0")
        ax.set_xlim(0, 1)
        ax.set_title(f"{report.suite}: {model_label(report.model)}")
        fig.tight_layout()
        written.append(_save(fig, out / "aggregates.png", plt))
    ratios = report.per_example.get("forget", {}).get("truth_ratio")
    if ratios:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist([r for r in ratios if r is not None], bins=20, alpha=0.6, label=model_label(report.model))
        if reference is not None and reference.forget_truth_ratio:
            ax.hist(reference.forget_truth_ratio, bins=20, alpha=0.6, label="retain model (reference)")
        ax.set_xlabel("truth ratio R (forget set)")
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, out / "truth_ratio.png", plt))
    forget = report.per_example.get("forget", {}).get("mia_min_k")
    holdout = report.per_example.get("holdout", {}).get("mia_min_k")
    if forget and holdout:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.hist([v for v in forget if v is not None], bins=20, alpha=0.6, label="forget")
        ax.hist([v for v in holdout if v is not None], bins=20, alpha=0.6, label="holdout")
        ax.set_xlabel("Min-K% score (higher = less likely a member)")
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, out / "membership.png", plt))
    return written


def compare_plot(reports: Mapping[str, EvalReport], path: str | os.PathLike,
                 metrics: Sequence[str] = ("forget_quality", "model_utility", "forget_truth_ratio", "forget_rouge",
                                           "retain_rouge", "extraction_strength")) -> Path:
    """Grouped bars of ``metrics`` for several reports (one PNG; the legend uses the mapping's names)."""
    plt = _pyplot()
    import numpy as np

    names = list(reports)
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(metrics)), 4))
    for i, name in enumerate(names):
        values = [reports[name].aggregates.get(m) or 0.0 for m in metrics]
        ax.bar(x + i * width, values, width, label=name)
    ax.set_xticks(x + width * (len(names) - 1) / 2, list(metrics), rotation=20, ha="right")
    ax.legend()
    fig.tight_layout()
    return _save(fig, Path(path), plt)


def _save(fig, path: Path, plt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path
