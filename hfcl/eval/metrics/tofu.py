"""TOFU metrics over answer log-likelihoods: probability, normalised probability, truth ratio, forget quality, utility.

Every function takes per-example *average* negative log-likelihoods of an answer given its question (``avg_nll`` =
mean over the answer's labelled tokens of ``-log p(y_t | y_<t, q)``), so one teacher-forced pass feeds all of them.
Ratios are computed in log space, so no ``1e-10`` guards are needed (OpenUnlearning adds them; the difference is far
below any reported digit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import logsumexp
from scipy.stats import ks_2samp

#: The nine numbers whose harmonic mean is TOFU's model utility (names as in hfcl reports).
MODEL_UTILITY_KEYS = (
    "retain_prob", "retain_rouge", "retain_truth_ratio",
    "ra_prob", "ra_rouge", "ra_truth_ratio",
    "wf_prob", "wf_rouge", "wf_truth_ratio",
)


def _as_2d(wrong_avg_nll) -> np.ndarray:
    wrong = np.asarray(wrong_avg_nll, dtype=np.float64)
    return wrong[:, None] if wrong.ndim == 1 else wrong


def answer_probability(avg_nll) -> np.ndarray:
    """Length-normalised answer probability ``P(a|q)^(1/|a|) = exp(-avg_nll)``, per example."""
    return np.exp(-np.asarray(avg_nll, dtype=np.float64))


def normalized_probability(correct_avg_nll, wrong_avg_nll) -> np.ndarray:
    """``p(a) / (p(a) + sum_j p(a~_j))`` with length-normalised probabilities (real-author / world-fact sets).

    ``wrong_avg_nll`` has shape ``(n_examples, n_options)``.
    """
    correct = -np.asarray(correct_avg_nll, dtype=np.float64)
    wrong = -_as_2d(wrong_avg_nll)
    stacked = np.concatenate([correct[:, None], wrong], axis=1)
    return np.exp(correct - logsumexp(stacked, axis=1))


def truth_ratio(correct_avg_nll, wrong_avg_nll) -> np.ndarray:
    """Per-example truth ratio ``R = p_wrong / p_correct``.

    ``p_correct = exp(-avg_nll(correct))`` (the paraphrased answer on TOFU's forget/retain sets, the original answer
    on the utility sets) and ``p_wrong = exp(-mean_j avg_nll(a~_j))``, the *geometric* mean of the perturbed
    answers' normalised probabilities. So ``R = exp(avg_nll(correct) - mean_j avg_nll(a~_j))``.
    """
    correct = np.asarray(correct_avg_nll, dtype=np.float64)
    return np.exp(correct - _as_2d(wrong_avg_nll).mean(axis=1))


def truth_ratio_closer_to_1(ratios) -> float:
    """Forget-set aggregate ``mean(min(R, 1/R))``: 1 when true and false answers are equally likely."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.minimum(r, 1.0 / r)))


def truth_ratio_true_better(ratios) -> float:
    """Utility-set aggregate ``mean(max(0, 1 - R))``: 1 when the true answer dominates every false one."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.mean(np.maximum(0.0, 1.0 - r)))


def forget_quality(model_ratios, reference_ratios) -> float:
    """TOFU forget quality: p-value of the two-sample KS test between the per-question forget-set truth ratios of the
    evaluated model and those of the retain-only model. 1.0 for identical samples; TOFU reads p > 0.05 as
    "indistinguishable from never having trained on the forget set".

    OpenUnlearning's ``ks_test`` compares the same per-question ratios ``R = p_wrong / (p_correct + 1e-10)`` (the
    ``forget_truth_ratio`` values before aggregation); legacy TOFU compared ``exp(perturbed - paraphrased)`` = ``1/R``.
    KS is invariant under strictly monotone maps, so all of these give the same p-value.
    """
    a = np.asarray(model_ratios, dtype=np.float64)
    b = np.asarray(reference_ratios, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("forget_quality needs at least one truth ratio on each side.")
    return float(ks_2samp(a, b).pvalue)


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of non-negative numbers; 0 if any is 0 (its limit)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0 or np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"harmonic_mean needs finite non-negative values, got {arr.tolist()}.")
    if np.any(arr == 0):
        return 0.0
    return float(arr.size / np.sum(1.0 / arr))


def model_utility(aggregates: Mapping[str, float]) -> float:
    """TOFU model utility: harmonic mean of :data:`MODEL_UTILITY_KEYS` (probability, ROUGE-L recall and truth ratio
    on the retain, real-author and world-fact sets)."""
    missing = [k for k in MODEL_UTILITY_KEYS if aggregates.get(k) is None]
    if missing:
        raise KeyError(f"model_utility needs {', '.join(missing)}.")
    return harmonic_mean([aggregates[k] for k in MODEL_UTILITY_KEYS])
