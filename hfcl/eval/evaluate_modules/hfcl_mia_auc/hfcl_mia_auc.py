"""Membership-inference AUC of loss-like scores (labels: 0 = forget / candidate member, 1 = holdout), and MUSE's
PrivLeak relative to a reference (retain-model) AUC when given."""

import datasets
import evaluate

from hfcl.eval.metrics.mia import mia_auc, privleak


class HfclMiaAuc(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Shi et al., 2024 (Min-K%); Shi et al., 2024 (MUSE).",
            inputs_description="predictions: loss-like membership scores (higher = less likely a member); "
                               "references: 0 for forget examples, 1 for holdout examples. reference_auc: optional "
                               "AUC of the retain model, to also return privleak.",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Value("int32")}),
        )

    def _compute(self, predictions, references, reference_auc=None):
        forget = [p for p, r in zip(predictions, references) if r == 0]
        holdout = [p for p, r in zip(predictions, references) if r == 1]
        auc = mia_auc(forget, holdout)
        out = {"auc": auc}
        if reference_auc is not None:
            out["privleak"] = privleak(auc, reference_auc)
        return out
