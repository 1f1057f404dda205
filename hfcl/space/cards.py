"""The eval-card tab: :class:`~hfcl.eval.EvalReport` tables with direction arrows, plots, and how far each model
moved from the target towards the retain model (the gold standard of unlearning).

Where a model's report is found, first match wins (:func:`find_reports`):

1. an explicit ``name=path`` pair (``hfcl space --reports target=out/target.json``);
2. ``eval_report.json`` in the model's own run directory;
3. for a zoo stage (``target``, ``retain``, ``base``...): a comparison report ``eval_report.<stage>.json`` saved in a
   served run directory (``hfcl eval --compare target,retain`` and ``hfcl demo`` write them next to the unlearned
   run), then in the demo's output (``./hfcl-demo/*/``), then in the report cache
   ``$HF_HOME/hfcl/reports/`` (:func:`stage_report_path`; every stage report found in 1-3 is copied there, so a
   later ``hfcl space --models target,retain`` finds it from any folder). A stage report is used only if it was
   computed on exactly the served build (its ``model.revision`` is ``zoo:<stage>-<recipe hash>``) and forget split.

"Progress to retain" is shown only where the target and retain models differ by more than noise
(:func:`within_noise`). Nothing is computed here that the reports do not hold.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .models import ModelSpec

REPORT_FILE = "eval_report.json"
#: Metrics summarised in the unlearned-vs-target-vs-retain comparison (shown when present in the reports).
COMPARISON_METRICS = ("forget_quality", "forget_truth_ratio", "forget_prob", "forget_rouge", "model_utility",
                      "retain_rouge", "privleak", "extraction_strength", "mia_min_k_auc")
#: Where ``hfcl demo`` writes its run directories by default (searched for zoo-stage comparison reports).
DEMO_DIR = "hfcl-demo"
#: Metrics that are the mean of a per-example value: ``metric -> (split, column, transform)``; their noise is
#: measured from the per-example values (standard error), the others use :data:`NOISE_FLOOR`.
PER_EXAMPLE_MEANS = {
    "forget_rouge": ("forget", "rouge", None), "forget_prob": ("forget", "prob", None),
    "retain_rouge": ("retain", "rouge", None), "retain_prob": ("retain", "prob", None),
    "forget_truth_ratio": ("forget", "truth_ratio", lambda r: min(r, 1.0 / r) if r > 0 else 0.0),
    "retain_truth_ratio": ("retain", "truth_ratio", lambda r: max(0.0, 1.0 - r)),
    "extraction_strength": ("forget", "extraction_strength", None),
    "exact_memorization": ("forget", "exact_memorization", None),
}
#: Smallest target-vs-retain gap that counts as a real difference, as a share of ``max(1, |target|, |retain|)``.
NOISE_FLOOR = 0.02
#: A gap within this many standard errors of the difference of two means is noise.
NOISE_SE = 2.0


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


def stage_revision(stage: str, zoo_config: Any = None, forget_split: str = "forget10") -> str | None:
    """``"zoo:<stage>-<recipe hash>"``: the ``model.revision`` an eval report of that zoo build carries (``None``
    for a source that is not a zoo stage). Computed from the recipe; nothing is built."""
    from ..zoo.build import MODEL_STAGES, stage_key, stage_name

    if stage not in MODEL_STAGES:
        return None
    return f"zoo:{stage_name(stage, forget_split)}-{stage_key(stage, zoo_config, forget_split)}"


def stage_report_path(revision: str, forget_split: str, suite: str = "tofu") -> Path:
    """The report cache file of a zoo build (``revision`` from :func:`stage_revision`): under ``$HFCL_CACHE`` or
    ``$HF_HOME/hfcl``, ``reports/<stage>-<hash>/<suite>-<forget_split>.json``."""
    from ..zoo import cache_root

    return cache_root() / "reports" / revision.removeprefix("zoo:") / f"{suite}-{forget_split}.json"


def _stage_candidates(spec: ModelSpec, served_dirs: Sequence[Path], search_dirs: Sequence[Path],
                      revision: str | None, forget_split: str) -> list[Path]:
    names = dict.fromkeys([spec.name, spec.source])
    out = [d / f"eval_report.{n}.json" for d in served_dirs for n in names]
    for root in search_dirs:
        if root.is_dir():
            out += sorted(p for n in names for p in root.glob(f"*/eval_report.{n}.json"))
    if revision is not None:
        out.append(stage_report_path(revision, forget_split))
    return out


def _matches_stage(report: Any, revision: str | None, forget_split: str) -> bool:
    split = (report.data or {}).get("forget_split")
    return revision is not None and report.model.get("revision") == revision and split in (None, forget_split)


def find_reports(specs: Sequence[ModelSpec], explicit: Mapping[str, os.PathLike] | None = None, *,
                 zoo_config: Any = None, forget_split: str = "forget10",
                 search_dirs: Sequence[os.PathLike] | None = None, remember: bool = True) -> ReportSet:
    """Load the report of every spec (see the module docstring for where each is looked for, in order).

    ``zoo_config`` / ``forget_split``: the recipe of the served zoo stages (a stage report must come from that
    build). ``search_dirs``: folders whose sub-folders may hold ``eval_report.<stage>.json`` (default: the demo's
    ``./hfcl-demo``). ``remember`` copies the stage reports found into the report cache.
    """
    from ..eval.report import EvalReport

    explicit = {k: Path(v) for k, v in (explicit or {}).items()}
    unknown = sorted(set(explicit) - {s.name for s in specs})
    if unknown:
        raise ConfigError(f"Report(s) given for unknown model(s) {', '.join(unknown)}; models: "
                          f"{', '.join(s.name for s in specs)}.")
    roots = [Path(p) for p in (search_dirs if search_dirs is not None else [DEMO_DIR])]
    served = [s.local_dir for s in specs if s.local_dir is not None]
    found = ReportSet()
    for spec in specs:
        path = explicit.get(spec.name)
        if path is None and spec.local_dir is not None and (spec.local_dir / REPORT_FILE).is_file():
            path = spec.local_dir / REPORT_FILE
        if path is not None:
            try:
                found.reports[spec.name] = EvalReport.load(path)
                found.sources[spec.name] = path / REPORT_FILE if path.is_dir() else path
            except Exception as exc:  # noqa: BLE001 - a broken report is reported in the tab, not fatal
                found.missing[spec.name] = f"could not read {path}: {exc}"
            continue
        revision = stage_revision(spec.source, zoo_config, forget_split)
        if revision is not None:
            for candidate in _stage_candidates(spec, served, roots, revision, forget_split):
                try:
                    report = EvalReport.load(candidate) if candidate.is_file() else None
                except Exception:  # noqa: BLE001 - an unreadable candidate is skipped; the next one may do
                    report = None
                if report is not None and _matches_stage(report, revision, forget_split):
                    found.reports[spec.name], found.sources[spec.name] = report, candidate
                    if remember:
                        _remember(candidate, stage_report_path(revision, forget_split, report.suite))
                    break
        if spec.name not in found.reports:
            where = (f"no {REPORT_FILE} for this zoo build in the served run folders (eval_report.{spec.source}.json)"
                     f", {DEMO_DIR}/*/ or the report cache" if revision is not None else f"no {REPORT_FILE}")
            found.missing[spec.name] = (f"{where} (run `hfcl eval --model {spec.source} --output_dir DIR`, then pass "
                                        f"--reports {spec.name}=DIR)")
    return found


def _remember(source: Path, target: Path) -> None:
    """Copy a stage report into the report cache (atomically; best effort: a read-only cache is not an error)."""
    try:
        if target.resolve() == source.resolve() or (target.is_file() and
                                                   target.stat().st_mtime_ns >= source.stat().st_mtime_ns):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError:
        pass


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


def per_example_values(report: Any, metric: str) -> list[float] | None:
    """The per-example values whose mean is ``metric`` (see :data:`PER_EXAMPLE_MEANS`), or ``None``."""
    if metric not in PER_EXAMPLE_MEANS:
        return None
    split, column, transform = PER_EXAMPLE_MEANS[metric]
    raw = ((report.per_example or {}).get(split) or {}).get(column)
    if not isinstance(raw, list):
        return None
    values = [float(v) for v in raw if isinstance(v, (int, float)) and math.isfinite(v)]
    return [transform(v) for v in values] if transform else values


def standard_error_of_difference(a: Sequence[float], b: Sequence[float]) -> float | None:
    """``sqrt(var(a)/n_a + var(b)/n_b)`` (sample variances): the standard error of ``mean(a) - mean(b)``;
    ``None`` with fewer than two values on either side."""
    if len(a) < 2 or len(b) < 2:
        return None

    def var(x: Sequence[float]) -> float:
        m = sum(x) / len(x)
        return sum((v - m) ** 2 for v in x) / (len(x) - 1)

    return math.sqrt(var(a) / len(a) + var(b) / len(b))


def within_noise(start: float, reference: float, se: float | None = None, floor: float = NOISE_FLOOR,
                 n_se: float = NOISE_SE) -> bool:
    """Whether target (``start``) and retain (``reference``) are too close for "progress to retain" to mean
    anything: ``|reference - start| <= max(floor * max(1, |start|, |reference|), n_se * se)``. A progress
    percentage divides by that gap, so inside the noise it is an artefact (e.g. 467% or -72%)."""
    gap = abs(reference - start)
    threshold = floor * max(1.0, abs(start), abs(reference))
    if se is not None:
        threshold = max(threshold, n_se * se)
    return gap <= threshold


def metric_noise(target_report: Any, retain_report: Any, metric: str) -> tuple[bool, float | None]:
    """``(within noise?, standard error of the gap or None)`` of ``metric`` between the two reports."""
    start, ref = target_report.aggregates.get(metric), retain_report.aggregates.get(metric)
    if start is None or ref is None:
        return False, None
    a, b = per_example_values(target_report, metric), per_example_values(retain_report, metric)
    se = standard_error_of_difference(a, b) if a is not None and b is not None else None
    return within_noise(start, ref, se), se


def comparison_markdown(reports: Mapping[str, Any], target: str = "target", retain: str = "retain",
                        metrics: Sequence[str] = COMPARISON_METRICS) -> str:
    """Markdown comparing every other model with ``target`` (before) and ``retain`` (never saw the forget set).

    The progress percentage is left out (``target ≈ retain``) where the two references are within noise of each
    other (:func:`within_noise`)."""
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

    noisy = []
    for metric in metrics:
        start, ref = reports[target].aggregates.get(metric), reports[retain].aggregates.get(metric)
        if start is None and ref is None:
            continue
        noise, _ = metric_noise(reports[target], reports[retain], metric)
        if noise:
            noisy.append(metric)
        cells = []
        for name in others:
            value = reports[name].aggregates.get(metric)
            progress = None if noise else progress_to_reference(value, start, ref)
            suffix = " (target ≈ retain)" if noise and value is not None else \
                ("" if progress is None else f" ({progress:.0%})")
            cells.append(format_value(value) + suffix)
        lines.append(f"| {metric} | {format_value(start)} | {format_value(ref)} | " + " | ".join(cells) + " |")
    lines.append(f"\nProgress: 0% = still behaves like `{target}`, 100% = behaves like `{retain}` on that metric.")
    if noisy:
        lines.append(f"No progress is shown for {', '.join(f'`{m}`' for m in noisy)}: there `{target}` and "
                     f"`{retain}` differ by no more than noise ({NOISE_SE:g} standard errors of the per-example "
                     f"values, or {NOISE_FLOOR:g} when the report has none), so a percentage of that gap means "
                     "nothing.")
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
