"""The metric registry: every reported metric is declared once, with what it reads, which way is better, the split it
is measured on and what it means.

A suite computes *per-example columns* in one scoring pass and one generation pass (``forget.prob``,
``forget.truth_ratio``, ``holdout.mia_loss``, ...), plus the raw inputs (``forget.scores``: the teacher-forced
:class:`~hfcl.eval.scoring.SequenceScore` of each forget answer, ``forget.answer``: the reference answers,
``forget.generation``: the greedy answers). Every aggregate is then one registered pure function of the inputs it
names: the suites (``run_tofu`` / ``run_muse``), :mod:`hfcl.eval.definitions`, report tables, cards (direction,
description, the split in ``model-index``), the Space and the ``hfcl_metric`` evaluate module all read this table.

Adding a metric is one function and one registration::

    register_metric(Metric("forget_answer_words", inputs=("forget.generation",), direction="lower", split="forget",
                           description="Mean number of words of the greedy forget answers.",
                           compute=lambda answers: float(np.mean([len(a.split()) for a in answers]))))

Input names: ``<split>.<column>`` (per-example values of that split), ``agg.<metric>`` (another metric's aggregate:
computed first) and ``reference.<field>`` (a field of the retain model's :class:`~hfcl.eval.ReferenceLog`; such
metrics are computed by ``with_reference`` and are ``None`` with a note when no log is given).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

DIRECTIONS = ("higher", "lower", "ideal")
#: Roles of the split a metric is measured on (cards map ``forget``/``retain`` to e.g. ``forget10``/``retain90``).
SPLITS = ("forget", "retain", "real_authors", "world_facts", "holdout", "test", "neighbor", "utility")
STAGES = ("suite", "reference", "attack")  # attack: computed only when `hfcl eval --attacks` runs them


@dataclass(frozen=True)
class MetricDefinition:
    """A reported metric: its meaning, and whether ``higher``, ``lower`` or closer to ``ideal`` is better."""

    name: str
    description: str
    direction: str  # "higher" | "lower" | "ideal"
    ideal: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'higher', 'lower' or 'ideal', got {self.direction!r}.")
        if self.direction == "ideal" and self.ideal is None:
            raise ValueError(f"{self.name}: direction 'ideal' needs an ideal value.")

    @property
    def arrow(self) -> str:
        """``↑``, ``↓`` or ``→x`` for tables."""
        if self.direction == "ideal":
            return f"→{self.ideal:g}"
        return "↑" if self.direction == "higher" else "↓"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Metric:
    """One registered metric.

    ``compute(*values)`` receives the values of ``inputs`` in order and returns a float (or ``None``: not defined
    here). ``suites``: the suites that report it. ``stage`` is ``"reference"`` when an input is a ``reference.*``
    field (computed once a retain-model log is known) and ``"suite"`` otherwise. ``undefined_note``: the report note
    when ``compute`` returns nan (the value becomes ``None``). ``feature``: the ``datasets`` feature type of the first
    input, for the ``hfcl_metric`` evaluate module (``None``: not offered there).
    """

    name: str
    description: str
    direction: str
    split: str
    inputs: tuple[str, ...] = ()
    compute: Callable[..., float | None] | None = field(default=None, compare=False)
    suites: tuple[str, ...] = ("tofu",)
    ideal: float | None = None
    stage: str | None = None
    undefined_note: str = ""
    feature: str | None = "float64"

    def __post_init__(self) -> None:
        _ = self.definition  # validates direction / ideal
        if self.split not in SPLITS:
            raise ValueError(f"{self.name}: split must be one of {SPLITS}, got {self.split!r}.")
        if self.stage is None:
            stage = "reference" if any(i.startswith("reference.") for i in self.inputs) else "suite"
            object.__setattr__(self, "stage", stage)
        if self.stage not in STAGES:
            raise ValueError(f"{self.name}: stage must be one of {STAGES}, got {self.stage!r}.")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "suites", tuple(self.suites))

    @property
    def definition(self) -> MetricDefinition:
        return MetricDefinition(self.name, self.description, self.direction, self.ideal)


#: Every registered metric, in display order (the order reports, cards and the Space show them).
METRICS: dict[str, Metric] = {}
#: ``{name: MetricDefinition}`` of every registered metric, kept in step with :data:`METRICS`.
DEFINITIONS: dict[str, MetricDefinition] = {}


def register_metric(metric: Metric, *, replace: bool = False) -> Metric:
    """Add ``metric`` to the registry (``replace=True`` to redefine an existing name); returns it."""
    if metric.name in METRICS and not replace:
        raise ValueError(f"A metric named {metric.name!r} is already registered; pass replace=True to redefine it.")
    METRICS[metric.name] = metric
    DEFINITIONS[metric.name] = metric.definition
    return metric


def unregister_metric(name: str) -> None:
    """Remove a metric (no error if it is not registered)."""
    METRICS.pop(name, None)
    DEFINITIONS.pop(name, None)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        from ...errors import ConfigError

        raise ConfigError(f"Unknown metric {name!r}; registered: {', '.join(METRICS)}.")
    return METRICS[name]


def metrics_for(suite: str, stage: str | None = None) -> list[Metric]:
    """The registered metrics of ``suite`` (and ``stage``), in display order."""
    return [m for m in METRICS.values() if suite in m.suites and (stage is None or m.stage == stage)]


def compute_metrics(metrics: list[Metric], inputs: Mapping[str, Any],
                    aggregates: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Aggregates of ``metrics`` from ``inputs`` (and already computed ``aggregates`` for ``agg.*`` inputs).

    ``agg.*`` dependencies among ``metrics`` are computed first, whatever the registration order. A missing input
    raises :class:`~hfcl.errors.DataError` naming the metric, the input and what is available.
    """
    from ...errors import DataError

    done: dict[str, Any] = dict(aggregates or {})
    pending = {m.name: m for m in metrics}
    out: dict[str, Any] = {}

    def value_of(metric: Metric, key: str, chain: tuple[str, ...]) -> Any:
        if key.startswith("agg."):
            name = key[4:]
            if name not in done and name in pending:
                run(pending[name], chain)
            if name in done:
                return done[name]
        elif key in inputs:
            return inputs[key]
        raise DataError(f"Metric {metric.name!r} needs input {key!r}, which this suite does not provide (available: "
                        f"{', '.join(sorted(inputs))}; agg.<metric> for computed aggregates).")

    def run(metric: Metric, chain: tuple[str, ...] = ()) -> None:
        if metric.name in chain:
            raise DataError(f"Metric inputs form a cycle: {' -> '.join(chain + (metric.name,))}.")
        if metric.compute is None:
            raise DataError(f"Metric {metric.name!r} has no compute function and cannot be computed by a suite.")
        values = [value_of(metric, key, chain + (metric.name,)) for key in metric.inputs]
        done[metric.name] = out[metric.name] = metric.compute(*values)

    for metric in metrics:
        if metric.name not in out:
            run(metric)
    return {m.name: out[m.name] for m in metrics}


__all__ = [
    "DEFINITIONS",
    "METRICS",
    "SPLITS",
    "Metric",
    "MetricDefinition",
    "compute_metrics",
    "get_metric",
    "metrics_for",
    "register_metric",
    "unregister_metric",
]
