"""TOFU truth ratio from answer log-likelihoods: R = exp(avg_nll(correct) - mean_j avg_nll(perturbed_j)), aggregated
with ``closer_to_1_better`` (forget sets) or ``true_better`` (retain / utility sets)."""

import datasets
import evaluate

from hfcl.eval.metrics import tofu


class HfclTruthRatio(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Maini et al., 2024. TOFU: A Task of Fictitious Unlearning for LLMs.",
            inputs_description="predictions: per-example mean NLL of the correct answer; references: per-example "
                               "list of mean NLLs of the perturbed answers. aggregator: 'closer_to_1_better' or "
                               "'true_better'.",
            features=datasets.Features({"predictions": datasets.Value("float64"),
                                        "references": datasets.Sequence(datasets.Value("float64"))}),
        )

    def _compute(self, predictions, references, aggregator="closer_to_1_better"):
        ratios = [float(tofu.truth_ratio([c], [w])[0]) for c, w in zip(predictions, references)]
        agg = {"closer_to_1_better": tofu.truth_ratio_closer_to_1, "true_better": tofu.truth_ratio_true_better}
        if aggregator not in agg:
            raise ValueError(f"aggregator must be one of {sorted(agg)}, got {aggregator!r}.")
        return {"truth_ratio": agg[aggregator](ratios), "ratios": ratios}
