"""Card plots as PNG bytes (matplotlib, Agg): forget vs utility across models, or the continual accuracy matrix."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

FORGET_AXES = ("forget_rouge", "forget_verbmem_rouge", "forget_prob", "forget_knowmem_rouge", "forget_truth_ratio")
UTILITY_AXES = ("model_utility", "retain_rouge", "retain_knowmem_rouge", "retain_prob")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, plt) -> bytes:
    buffer = io.BytesIO()
    # a fixed creation date keeps the bytes reproducible, so re-pushing an unchanged run uploads nothing
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def forget_vs_utility(reports: Mapping[str, Mapping[str, Any]]) -> tuple[str, bytes] | None:
    """Scatter of a forget metric against a utility metric, one point per model labelled with its key in
    ``reports`` (a stage or run name); ``None`` if the reports lack a common pair of metrics."""
    def pick(axes: Sequence[str]) -> str | None:
        return next((m for m in axes if all(isinstance((r.get("aggregates") or {}).get(m), (int, float))
                                            for r in reports.values())), None)

    x_metric, y_metric = pick(FORGET_AXES), pick(UTILITY_AXES)
    if x_metric is None or y_metric is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for i, (name, report) in enumerate(reports.items()):
        x, y = report["aggregates"][x_metric], report["aggregates"][y_metric]
        ax.scatter([x], [y], s=80, zorder=3, color=f"C{i}", label=name)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6))
    ax.set_xlabel(f"{x_metric} (forget set, lower = more forgotten)")
    ax.set_ylabel(f"{y_metric} (higher = more useful)")
    ax.margins(0.2)  # room for the labels of the extreme points
    ax.set_title("Forgetting vs utility")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return "plots/forget_vs_utility.png", _png(fig, plt)


def accuracy_matrix(matrix: Sequence[Sequence[float]], tasks: Sequence[str] | None = None, *,
                    row_labels: Sequence[str] | None = None, marked_rows: Sequence[int] = ()) -> tuple[str, bytes]:
    """Heat map of a continual-learning accuracy matrix R (column j = task j; with T + 1 rows, row 0 is the model
    before any training and row i the model after task i, as ``hfcl.eval.continual_report`` records it).

    ``row_labels`` names the rows (a stream with forget events has one row per step); ``marked_rows`` (the rows
    after a forget event) get a red frame and a red label."""
    plt = _pyplot()
    rows, cols = len(matrix), len(matrix[0])
    names = list(tasks) if tasks else [f"task {j + 1}" for j in range(cols)]
    offset = 1 if rows == cols + 1 else 0
    fig, ax = plt.subplots(figsize=(max(4.8, 2.2 + 1.1 * cols), max(3.6, 1.4 + 0.55 * rows)), layout="constrained")
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(rows):
        for j in range(cols):
            ax.text(j, i, f"{matrix[i][j]:.2f}", ha="center", va="center", fontsize=8,
                    color="k" if matrix[i][j] > 0.6 else "w")
    wrap = lambda label: "\n".join(textwrap.wrap(str(label), 14)) or str(label)
    ax.set_xticks(range(cols), labels=[wrap(n) for n in names], rotation=30, ha="right", fontsize=8)
    labels = list(row_labels) if row_labels else ["before" if i < offset else f"after {names[i - offset]}"
                                                  for i in range(rows)]
    ax.set_yticks(range(rows), labels=[wrap(label) for label in labels], fontsize=8)
    for i in marked_rows:
        ax.add_patch(plt.Rectangle((-0.5, i - 0.5), cols, 1, fill=False, edgecolor="red", linewidth=2))
        ax.get_yticklabels()[i].set_color("red")
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("model")
    ax.set_title("Accuracy matrix R")
    fig.colorbar(image, ax=ax, shrink=0.9)
    return "plots/accuracy_matrix.png", _png(fig, plt)


def card_plots(report: Mapping[str, Any] | None, comparisons: Mapping[str, Mapping[str, Any]],
               this_name: str | None = None) -> dict[str, bytes]:
    """The plots a card gets when the run directory brought none. Points are labelled by name: ``this_name``
    (default: the report's stage or run folder name, :func:`hfcl.eval.plots.model_label`, never a local path) and
    the ``comparisons`` keys (``target``, ``retain``)."""
    if not report:
        return {}
    if this_name is None:
        from ..eval.plots import model_label

        this_name = model_label(report.get("model"))
        if this_name in comparisons:
            this_name = f"{this_name} (this model)"
    plots: dict[str, bytes] = {}
    matrix = ((report.get("per_example") or {}).get("accuracy_matrix") or {}).get("R")
    if isinstance(matrix, list) and matrix and isinstance(matrix[0], list):
        path, data = accuracy_matrix(matrix, (report.get("data") or {}).get("tasks"))
        plots[path] = data
    scatter = forget_vs_utility({this_name: report, **comparisons})
    if scatter is not None:
        plots[scatter[0]] = scatter[1]
    return plots
