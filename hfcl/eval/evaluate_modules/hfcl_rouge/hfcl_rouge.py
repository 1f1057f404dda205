"""ROUGE-L recall (TOFU) and F1 (MUSE) and ROUGE-1 recall of generations, as hfcl computes them (rouge_score,
Porter stemming), without downloading the Hub's ``rouge`` script."""

import datasets
import evaluate

from hfcl.eval.metrics.rouge import rouge_scores


class HfclRouge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Lin, 2004. ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description="predictions: generated texts; references: reference texts (one per prediction). "
                               "Returns the means of rougeL_recall, rougeL_f1 and rouge1_recall.",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        scores = rouge_scores(predictions, references)
        keys = ("rougeL_recall", "rougeL_f1", "rouge1_recall")
        return {k: sum(s[k] for s in scores) / len(scores) for k in keys}
