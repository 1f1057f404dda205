"""Membership-inference attacks on per-token log-probabilities, their AUC, and MUSE's PrivLeak.

Every score is *loss-like*: higher means "less likely a training member". :func:`mia_auc` labels the forget
(candidate member) set 0 and the holdout set 1, as OpenUnlearning does, so an AUC near 1 means the forget set is
recognisably memorised and 0.5 means no signal.
"""

from __future__ import annotations

import math
import zlib

import numpy as np


def _lowest_k(values: np.ndarray, k: float) -> np.ndarray:
    if not 0 < k <= 1:
        raise ValueError(f"k must be in (0, 1], got {k}.")
    count = max(1, int(len(values) * k))
    return np.sort(values)[:count]


def loss_score(token_logprobs) -> float:
    """LOSS attack (Yeom et al.): mean negative log-likelihood of the tokens."""
    lp = np.asarray(token_logprobs, dtype=np.float64)
    return float(-lp.mean()) if lp.size else float("nan")


def zlib_score(token_logprobs, text: str) -> float:
    """ZLib attack (Carlini et al. 2021): NLL divided by the zlib-compressed length of the text in bytes."""
    return loss_score(token_logprobs) / len(zlib.compress(text.encode("utf-8")))


def min_k_score(token_logprobs, k: float = 0.4) -> float:
    """Min-K% Prob (Shi et al. 2024): minus the mean of the ``max(1, floor(k*n))`` lowest token log-probs."""
    lp = np.asarray(token_logprobs, dtype=np.float64)
    return float(-_lowest_k(lp, k).mean()) if lp.size else float("nan")


def min_k_plus_plus_score(token_logprobs, mu, var, k: float = 0.4, min_var: float = 1e-6) -> float:
    """Min-K%++ (Zhang et al. 2024): token log-prob standardised by the model's next-token distribution,
    ``z_t = (log p(y_t) - mu_t) / sigma_t`` with ``mu_t = E_p[log p]``, ``sigma_t^2 = Var_p[log p]`` (clamped at
    ``min_var`` as OpenUnlearning does); score = minus the mean of the lowest k% of ``z_t``."""
    lp = np.asarray(token_logprobs, dtype=np.float64)
    if not lp.size:
        return float("nan")
    z = (lp - np.asarray(mu, dtype=np.float64)) / np.sqrt(np.maximum(np.asarray(var, dtype=np.float64), min_var))
    return float(-_lowest_k(z, k).mean())


def reference_score(target_avg_nll: float, reference_avg_nll: float) -> float:
    """Reference-model attack (Carlini et al. 2021): NLL under the target minus NLL under a reference model."""
    return float(target_avg_nll - reference_avg_nll)


def mia_auc(forget_scores, holdout_scores) -> float:
    """ROC AUC of loss-like scores with labels forget = 0, holdout = 1 (``sklearn.metrics.roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    forget = np.asarray(forget_scores, dtype=np.float64)
    holdout = np.asarray(holdout_scores, dtype=np.float64)
    if forget.size == 0 or holdout.size == 0:
        raise ValueError("mia_auc needs at least one forget and one holdout score.")
    labels = np.concatenate([np.zeros(forget.size), np.ones(holdout.size)])
    return float(roc_auc_score(labels, np.concatenate([forget, holdout])))


def privleak(auc: float, reference_auc: float) -> float:
    """MUSE PrivLeak in percent: ``(s - r) / r * 100`` with ``s = 1 - auc``, ``r = 1 - reference_auc``.

    The ``1 - x`` flip reproduces MUSE's AUC convention. ~0 is ideal (the retain model scores exactly 0); strongly
    negative means the forget set is still recognisable (under-unlearned, about -100 for the target model), large
    positive means over-unlearned. Nan when the reference AUC is 1 (``r = 0``: undefined).
    """
    s, r = 1.0 - float(auc), 1.0 - float(reference_auc)
    return (s - r) / r * 100.0 if r != 0 else math.nan
