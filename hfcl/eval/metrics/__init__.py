"""Pure metric functions (numpy in, floats out), each unit-tested against hand-computed values."""

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
    "answer_probability", "normalized_probability", "truth_ratio", "truth_ratio_closer_to_1",
    "truth_ratio_true_better", "forget_quality", "harmonic_mean", "model_utility", "MODEL_UTILITY_KEYS",
    "rouge_scores", "rouge_l_recall", "rouge_l_f1",
    "loss_score", "zlib_score", "min_k_score", "min_k_plus_plus_score", "reference_score", "mia_auc", "privleak",
    "exact_memorization", "extraction_strength",
    "final_average_accuracy", "average_incremental_accuracy", "backward_transfer", "forward_transfer",
    "forgetting_per_task", "average_forgetting", "intransigence", "continual_metrics",
]
