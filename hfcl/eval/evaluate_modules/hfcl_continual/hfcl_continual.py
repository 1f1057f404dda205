"""Continual-learning metrics from an accuracy matrix R of shape (T + 1, T) (row 0 = before any task): final and
average incremental accuracy, backward and forward transfer, average forgetting, intransigence."""

import datasets
import evaluate

from hfcl.eval.metrics.continual import continual_metrics


class HfclContinual(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Lopez-Paz & Ranzato, 2017 (GEM); Chaudhry et al., 2018 (RWalk).",
            inputs_description="predictions: the rows of R in order (row 0 = base model). Options: baseline "
                               "(per-task scores for FWT; default row 0), joint (per-task multitask scores for "
                               "intransigence), forgetting_reference ('max', 'max_all', 'first').",
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("float64"))}),
        )

    def _compute(self, predictions, baseline=None, joint=None, forgetting_reference="max"):
        return continual_metrics(predictions, baseline=baseline, joint=joint,
                                 forgetting_reference=forgetting_reference)
