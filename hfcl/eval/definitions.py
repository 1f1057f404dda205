"""What each reported number means and which way is better: a view of the metric registry
(:mod:`hfcl.eval.metrics.registry`), the single source that reports, cards and the Space render.

A metric registered with :func:`~hfcl.eval.metrics.register_metric` appears in :data:`DEFINITIONS` at once.
"""

from __future__ import annotations

from .metrics.registry import DEFINITIONS, MetricDefinition  # importing hfcl.eval.metrics registers the built-ins


def definitions_for(names) -> dict[str, MetricDefinition]:
    """Definitions of ``names`` (unknown names are skipped)."""
    return {n: DEFINITIONS[n] for n in names if n in DEFINITIONS}


__all__ = ["DEFINITIONS", "MetricDefinition", "definitions_for"]
