"""TOFU forget quality: p-value of the two-sample KS test between the evaluated model's per-question forget-set truth
ratios and the retain-only model's."""

import datasets
import evaluate

from hfcl.eval.metrics.tofu import forget_quality


class HfclForgetQuality(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Maini et al., 2024. TOFU: A Task of Fictitious Unlearning for LLMs.",
            inputs_description="predictions: truth ratios of the evaluated model; references: truth ratios of the "
                               "retain model on the same questions.",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        return {"forget_quality": forget_quality(predictions, references)}
