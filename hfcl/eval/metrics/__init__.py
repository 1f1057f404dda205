"""Pure metric functions (numpy in, floats out), each unit-tested against hand-computed values, and the metric
registry (:mod:`.registry`; the built-in registrations are in :mod:`.catalog`)."""

from .continual import (
    average_forgetting,
    average_incremental_accuracy,
    backward_transfer,
    continual_metrics,
    final_average_accuracy,
    forgetting_per_task,
    forward_transfer,
    intransigence,
)
from .memorization import exact_memorization, extraction_strength
from .mia import loss_score, mia_auc, min_k_plus_plus_score, min_k_score, privleak, reference_score, zlib_score
from .registry import (
    DEFINITIONS,
    METRICS,
    Metric,
    MetricDefinition,
    compute_metrics,
    get_metric,
    metrics_for,
    register_metric,
    unregister_metric,
)
from .rouge import rouge_l_f1, rouge_l_recall, rouge_scores
from .tofu import (
    MODEL_UTILITY_KEYS,
    answer_probability,
    forget_quality,
    harmonic_mean,
    model_utility,
    normalized_probability,
    truth_ratio,
    truth_ratio_closer_to_1,
    truth_ratio_true_better,
)

__all__ = [
    "DEFINITIONS",
    "METRICS",
    "MODEL_UTILITY_KEYS",
    "Metric",
    "MetricDefinition",
    "answer_probability",
    "average_forgetting",
    "average_incremental_accuracy",
    "backward_transfer",
    "compute_metrics",
    "continual_metrics",
    "exact_memorization",
    "extraction_strength",
    "final_average_accuracy",
    "forget_quality",
    "forgetting_per_task",
    "forward_transfer",
    "get_metric",
    "harmonic_mean",
    "intransigence",
    "loss_score",
    "mean",
    "metrics_for",
    "mia_auc",
    "min_k_plus_plus_score",
    "min_k_score",
    "model_utility",
    "normalized_probability",
    "privleak",
    "reference_score",
    "register_metric",
    "rouge_l_f1",
    "rouge_l_recall",
    "rouge_scores",
    "truth_ratio",
    "truth_ratio_closer_to_1",
    "truth_ratio_true_better",
    "unregister_metric",
    "zlib_score",
]

from .catalog import mean  # registers the built-in metrics
