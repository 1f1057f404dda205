"""Any metric of hfcl's metric registry as an ``evaluate`` module: ``config_name`` is the metric's name.

``predictions`` are the values of the metric's first input (for example the per-question truth ratios for
``forget_quality``); every other input is a keyword argument named like the input with dots as underscores
(``holdout.mia_loss`` -> ``holdout_mia_loss``, ``reference.forget_truth_ratio`` -> ``reference_forget_truth_ratio``).
"""

import datasets
import evaluate

from hfcl.eval.metrics.registry import get_metric


def argument_name(key: str) -> str:
    return key.replace(".", "_")


class HfclMetric(evaluate.Metric):
    def _metric(self):
        from hfcl.errors import ConfigError

        if self.config_name in (None, "", "default"):
            raise ConfigError("Pass the metric's name as config_name, e.g. load('hfcl_metric', 'forget_prob').")
        metric = get_metric(self.config_name)
        if metric.feature is None or not metric.inputs:
            raise ConfigError(f"Metric {metric.name!r} reads {', '.join(metric.inputs) or 'nothing'}, which is not a "
                              "per-example column: compute it with hfcl.eval.metrics.compute_metrics instead.")
        return metric

    def _info(self):
        metric = self._metric()
        rest = [argument_name(k) for k in metric.inputs[1:]]
        return evaluate.MetricInfo(
            description=f"{metric.name} ({metric.direction} is better): {metric.description}", citation="hfcl",
            inputs_description=f"predictions: {metric.inputs[0]}" + (f"; keyword arguments: {', '.join(rest)}"
                                                                    if rest else ""),
            features=datasets.Features({"predictions": datasets.Value(metric.feature)}),
        )

    def _compute(self, predictions, **inputs):
        metric = self._metric()
        missing = [argument_name(k) for k in metric.inputs[1:] if argument_name(k) not in inputs]
        if missing:
            raise ValueError(f"{metric.name} needs the keyword argument(s) {', '.join(missing)}.")
        values = [list(predictions), *(inputs[argument_name(k)] for k in metric.inputs[1:])]
        return {metric.name: metric.compute(*values)}
