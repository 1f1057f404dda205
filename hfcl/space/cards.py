"""The eval-card tab: :class:`~hfcl.eval.EvalReport` tables with direction arrows, plots, and how far each model
moved from the target towards the retain model (the gold standard of unlearning).

Reports come from ``eval_report.json`` in a model's run directory, or from explicit ``name=path`` pairs
(``hfcl space --reports target=out/target.json``). Nothing is computed here that the report does not hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConfigError
from .models import ModelSpec

REPORT_FILE = "eval_report.json"
#: Metrics summarised in the unlearned-vs-target-vs-retain comparison (shown when present in the reports).
COMPARISON_METRICS = ("forget_quality", "forget_truth_ratio", "forget_prob", "forget_rouge", "model_utility",
                      "retain_rouge", "privleak", "extraction_strength", "mia_min_k_auc")


@dataclass
class ReportSet:
    """Reports found for the loaded models (``name -> EvalReport``) and why the others have none."""

    reports: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)


def parse_report_paths(items: str | Sequence[str] | Mapping[str, str] | None) -> dict[str, Path]:
    """``{"target": Path(...)}`` from ``"target=a.json,retain=dir"`` (or a list / mapping of the same)."""
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {str(k): Path(v) for k, v in items.items()}
    parts = items.split(",") if isinstance(items, str) else list(items)
    out: dict[str, Path] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"Report {part!r}: write NAME=PATH (NAME is one of the --models names).")
        out[name.strip()] = Path(path.strip()).expanduser()
    return out


def find_reports(specs: Sequence[ModelSpec], explicit: Mapping[str, os.PathLike] | None = None) -> ReportSet:
    """Load the report of every spec: an explicit path wins, else ``eval_report.json`` in its local folder."""
    from ..eval.report import EvalReport

    explicit = {k: Path(v) for k, v in (explicit or {}).items()}
    unknown = sorted(set(explicit) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"Report(s) given for unknown model(s) {', '.join(unknown)}; models: "
                          f"{', '.join(s.name for s in specs)}.")
    found = ReportSet()
    for spec in specs:
        path = explicit.get(spec.name)
        if path is None and spec.local_dir is not None and (spec.local_dir / REPORT_FILE).is_file():
            path = spec.local_dir / REPORT_FILE
        if path is None:
            found.missing[spec.name] = (f"no {REPORT_FILE} (run `hfcl eval --model {spec.source} --out DIR`, then "
                                        f"pass --reports {spec.name}=DIR)")
            continue
        try:
            found.reports[spec.name] = EvalReport.load(path)
            found.sources[spec.name] = path / REPORT_FILE if path.is_dir() else path
        except Exception as exc:  # noqa: BLE001 - a broken report is reported in the tab, not fatal
            found.missing[spec.name] = f"could not read {path}: {exc}"
    return found


def report_table(reports: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """``(headers, rows)``: a row per metric (union, report display order) with its direction arrow and one
    formatted value per model."""
    from ..eval.definitions import DEFINITIONS
    from ..eval.report import format_value

    headers = ["metric", "better", *reports]
    metrics: list[str] = []
    for report in reports.values():
        metrics += [m for m in report.ordered_metrics() if m not in metrics]
    rows = []
    for metric in metrics:
        definition = next((r.definitions[metric] for r in reports.values() if metric in r.definitions),
                          DEFINITIONS.get(metric))
        rows.append([metric, definition.arrow if definition else "",
                     *[format_value(r.aggregates.get(metric)) for r in reports.values()]])
    return headers, rows


def progress_to_reference(value: float | None, start: float | None, reference: float | None) -> float | None:
    """Share of the way from ``start`` (target) to ``reference`` (retain) that ``value`` covers: 0 = unchanged,
    1 = reached the retain model, > 1 = overshot. ``None`` when undefined (missing value or start == reference)."""
    if value is None or start is None or reference is None or reference == start:
        return None
    return (value - start) / (reference - start)


def comparison_markdown(reports: Mapping[str, Any], target: str = "target", retain: str = "retain",
                        metrics: Sequence[str] = COMPARISON_METRICS) -> str:
    """Markdown comparing every other model with ``target`` (before) and ``retain`` (never saw the forget set)."""
    if target not in reports or retain not in reports:
        have = ", ".join(reports) or "none"
        return (f"*The unlearned-vs-target-vs-retain comparison needs reports for models named `{target}` and "
                f"`{retain}` (have: {have}).*")
    others = [n for n in reports if n not in (target, retain)]
    if not others:
        return f"*Add an unlearned or composed model with a report to compare it with `{target}` and `{retain}`.*"
    lines = [f"| metric | {target} | {retain} | " + " | ".join(f"{n} (progress to {retain})" for n in others) + " |",
             "|---|---|---|" + "---|" * len(others)]
    from ..eval.report import format_value

    for metric in metrics:
        start, ref = reports[target].aggregates.get(metric), reports[retain].aggregates.get(metric)
        if start is None and ref is None:
            continue
        cells = []
        for name in others:
            value = reports[name].aggregates.get(metric)
            progress = progress_to_reference(value, start, ref)
            cells.append(format_value(value) + ("" if progress is None else f" ({progress:.0%})"))
        lines.append(f"| {metric} | {format_value(start)} | {format_value(ref)} | " + " | ".join(cells) + " |")
    lines.append(f"\nProgress: 0% = still behaves like `{target}`, 100% = behaves like `{retain}` on that metric.")
    return "\n".join(lines)


def report_plots(found: ReportSet, out_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """``(png path, caption)``: a grouped-bar comparison of every report plus the plots saved next to each report
    (``plots/*.png`` in its run directory)."""
    from ..eval.plots import compare_plot

    plots: list[tuple[str, str]] = []
    if found.reports:
        path = compare_plot(found.reports, Path(out_dir) / "compare.png")
        plots.append((str(path), "key metrics, all models"))
    for name, source in found.sources.items():
        for png in sorted((source.parent / "plots").glob("*.png")):
            plots.append((str(png), f"{name}: {png.stem}"))
    return plots


def notes_markdown(found: ReportSet) -> str:
    """Each report's provenance line and notes, and which models have no report (and how to make one)."""
    lines = []
    for name, report in found.reports.items():
        versions = report.provenance.get("versions", {})
        parts = [f"{report.suite} suite", f"model `{report.name}`"]
        if report.data.get("fingerprint"):
            parts.append(f"data `{report.data['fingerprint']}`")
        parts.append(f"seed {report.seed}")
        if versions.get("transformers"):
            parts.append(f"transformers {versions['transformers']}")
        lines.append(f"- **{name}**: " + ", ".join(parts))
        lines += [f"  - note: {note}" for note in report.notes]
    lines += [f"- **{name}**: {why}" for name, why in found.missing.items()]
    return "\n".join(lines)
