"""ROUGE of generations against references, with ``rouge_score`` (TOFU: ROUGE-L recall; MUSE: ROUGE-L F1)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np


@functools.lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
    """Per pair: ``rouge1_recall``, ``rougeL_recall``, ``rougeL_f1`` (Porter stemming, as TOFU and MUSE)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references.")
    out = []
    for prediction, reference in zip(predictions, references):
        scores = _scorer().score(reference, prediction)
        out.append({"rouge1_recall": scores["rouge1"].recall, "rougeL_recall": scores["rougeL"].recall,
                    "rougeL_f1": scores["rougeL"].fmeasure})
    return out


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L recall per pair: the share of the reference's longest common subsequence found in the prediction."""
    return np.array([s["rougeL_recall"] for s in rouge_scores(predictions, references)], dtype=np.float64)


def rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-L F1 per pair."""
    return np.array([s["rougeL_f1"] for s in rouge_scores(predictions, references)], dtype=np.float64)
