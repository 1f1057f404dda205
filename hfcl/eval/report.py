"""``EvalReport``: every number of an evaluation with its provenance; JSON round-trip and rich tables.

This is what ``hfcl eval`` writes as ``eval_report.json`` and what cards and the Space render.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.io import atomic_write_json
from .definitions import DEFINITIONS, MetricDefinition
from .metrics.registry import METRICS

FORMAT = "hfcl-eval-report/1"
REPORT_FILE = "eval_report.json"
#: Order in which the built-in aggregates are shown (others follow alphabetically). The live order is the metric
#: registry's (:func:`display_order`): a registered metric takes its place there.
DISPLAY_ORDER = tuple(METRICS)


def display_order() -> tuple[str, ...]:
    """Every registered metric, in display order."""
    return tuple(METRICS)


def ordered(names) -> list[str]:
    """``names`` in display order: registered metrics first (registry order), the others alphabetically."""
    names = list(names)
    shown = [k for k in METRICS if k in names]
    return shown + sorted(k for k in names if k not in shown)


@dataclass
class EvalReport:
    """Aggregates, per-example values and metric definitions of one model on one suite, with provenance.

    ``model`` holds ``id``, ``path``, ``revision``, ``adapter_id``, ``adapter_revision``; ``data`` the source,
    forget split, fingerprint and split sizes; ``reference_log`` the retain-model log's fingerprint, path and model
    (``None`` when no log was used: then ``forget_quality`` and ``privleak`` are ``None`` and ``notes`` says why).
    """

    suite: str
    aggregates: dict[str, float | None]
    per_example: dict[str, dict[str, list]] = field(default_factory=dict)
    definitions: dict[str, MetricDefinition] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    reference_log: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)

    # --- serialisation ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["definitions"] = {k: v.to_dict() for k, v in self.definitions.items()}
        return {"format": FORMAT, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        data = dict(data)
        fmt = data.pop("format", None)
        if fmt != FORMAT:
            raise ConfigError(f"Not an hfcl eval report (format {fmt!r}, expected {FORMAT!r}).")
        data["definitions"] = {k: MetricDefinition(**v) for k, v in data.get("definitions", {}).items()}
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"Malformed eval report: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> EvalReport:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report atomically; a directory gets ``eval_report.json`` inside it."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / REPORT_FILE
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvalReport:
        """Read a report file, or ``eval_report.json`` in a run directory."""
        path = Path(path)
        if path.is_dir():
            path = path / REPORT_FILE
        if not path.is_file():
            raise ConfigError(f"No eval report at {str(path)!r}; run `hfcl eval --model ... --output_dir DIR` first.")
        return cls.from_json(path.read_text(encoding="utf-8"))

    # --- display -----------------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        model = self.model.get("id") or "model"
        adapter = self.model.get("adapter_id")
        return f"{model} + {adapter}" if adapter else str(model)

    def ordered_metrics(self) -> list[str]:
        return ordered(self.aggregates)

    def definition(self, metric: str) -> MetricDefinition | None:
        """The definition of ``metric`` stored in the report (else hfcl's registry; ``None`` if unknown)."""
        return self.definitions.get(metric) or DEFINITIONS.get(metric)

    def rows(self) -> list[dict[str, Any]]:
        """The aggregates as plain rows in display order, for cards, data frames and the Space: ``metric``,
        ``value`` (``None`` = not computed, see ``notes``), ``better`` (``↑``/``↓``/``→x``), ``direction``,
        ``ideal`` and ``description``."""
        out = []
        for metric in self.ordered_metrics():
            d = self.definition(metric)
            out.append({"metric": metric, "value": self.aggregates[metric], "better": d.arrow if d else "",
                        "direction": d.direction if d else None, "ideal": d.ideal if d else None,
                        "description": d.description if d else ""})
        return out

    def example_rows(self, split: str) -> list[dict[str, Any]]:
        """Per-example values of ``split`` (e.g. ``"forget"``: question, generation, prob, rouge, truth_ratio, ...)
        as one dict per example, for browsing in a table. Raises ``KeyError`` naming the available splits."""
        if split not in self.per_example:
            raise KeyError(f"No per-example values for split {split!r}; available: {sorted(self.per_example)}.")
        columns = {k: v for k, v in self.per_example[split].items() if isinstance(v, list)}
        size = max((len(v) for v in columns.values()), default=0)
        return [{k: v[i] for k, v in columns.items() if len(v) == size} for i in range(size)]

    def table(self, title: str | None = None):
        """A ``rich.table.Table`` of the aggregates with their direction."""
        return compare_table({self.name: self}, title=title or f"{self.suite} evaluation of {self.name}")

    def print(self, console=None) -> None:
        """Print the table (and notes) to the terminal."""
        from rich.console import Console

        console = console or Console()
        console.print(self.table())
        for note in self.notes:
            console.print(f"[yellow]note:[/] {note}", highlight=False)


def format_value(value: float | None) -> str:
    if value is None:
        return "—"
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"


def _named(reports: Mapping[str, EvalReport] | Sequence[EvalReport]) -> dict[str, EvalReport]:
    if isinstance(reports, Mapping):
        return dict(reports)
    named: dict[str, EvalReport] = {}
    for i, report in enumerate(reports):
        named[report.name if report.name not in named else f"{report.name} ({i})"] = report
    return named


def compare_rows(reports: Mapping[str, EvalReport] | Sequence[EvalReport]) -> tuple[list[str], list[list[Any]]]:
    """Several reports side by side as plain data: ``(header, rows)`` with header ``["metric", "better", *names]``
    and one row per metric (values are floats or ``None``), e.g. for ``gradio.Dataframe`` or a Markdown table."""
    named = _named(reports)
    metrics: list[str] = []
    for report in named.values():
        metrics += [m for m in report.ordered_metrics() if m not in metrics]
    rows = []
    for metric in metrics:
        definition = next((r.definition(metric) for r in named.values() if r.definition(metric)), None)
        rows.append([metric, definition.arrow if definition else "",
                     *[r.aggregates.get(metric) for r in named.values()]])
    return ["metric", "better", *named], rows


def markdown_table(reports: Mapping[str, EvalReport] | Sequence[EvalReport] | EvalReport) -> str:
    """A GitHub-flavoured Markdown table of one or several reports (``—`` = not computed)."""
    if isinstance(reports, EvalReport):
        reports = {reports.name: reports}
    header, rows = compare_rows(reports)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    for row in rows:
        lines.append("| " + " | ".join([row[0], row[1], *map(format_value, row[2:])]) + " |")
    return "\n".join(lines) + "\n"


def compare_table(reports: Mapping[str, EvalReport] | Sequence[EvalReport], title: str | None = None):
    """Several reports side by side as one ``rich`` table: a row per metric, a column per model."""
    from rich.table import Table

    header, rows = compare_rows(reports)
    table = Table(title=title or "Evaluation", title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("better", justify="center")
    for name in header[2:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row[0], row[1], *map(format_value, row[2:]))
    return table


def print_reports(reports: Mapping[str, EvalReport] | Sequence[EvalReport], title: str | None = None,
                  console=None) -> None:
    """Print several reports side by side (one table), then each report's notes."""
    from rich.console import Console

    console = console or Console()
    named = _named(reports)
    console.print(compare_table(named, title=title))
    for name, report in named.items():
        for note in report.notes:
            console.print(f"[yellow]note ({name}):[/] {note}", highlight=False)
