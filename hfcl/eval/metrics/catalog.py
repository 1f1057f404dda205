"""hfcl's built-in metrics: one registration each (see :mod:`hfcl.eval.metrics.registry`), in display order."""

from __future__ import annotations

import math

import numpy as np

from .continual import (
    average_forgetting,
    average_incremental_accuracy,
    backward_transfer,
    final_average_accuracy,
    forward_transfer,
    intransigence,
)
from .mia import mia_auc, privleak
from .registry import Metric, register_metric
from .tofu import forget_quality, harmonic_mean, truth_ratio_closer_to_1, truth_ratio_true_better


def mean(values) -> float | None:
    """Mean of the finite values (``None`` and nan skipped); ``None`` when nothing is left."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    return float(arr.mean()) if arr.size else None


def _finite(values) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _truth_ratio(aggregate):
    return lambda ratios: aggregate(_finite(ratios))


def _utility(*values) -> float:
    return harmonic_mean(values)


_MIA = ("ROC AUC of the {attack} membership score, forget set (label 0) vs never-trained holdout (label 1); 1 = "
        "forget set recognisably memorised, 0.5 = no signal (the retain model's value is the goal).")
_BOTH = ("tofu", "muse")
_UTILITY_SPLITS = (("retain", "retain"), ("ra", "real_authors"), ("wf", "world_facts"))


def _register_all() -> None:
    r = register_metric
    r(Metric("forget_quality", "p-value of the two-sample KS test between the per-question forget-set truth ratios "
             "R of this model and of the retain-only model (reference log). 1.0 = indistinguishable; > 0.05 passes "
             "TOFU's bar.", "higher", "forget", ("forget.truth_ratio", "reference.forget_truth_ratio"),
             lambda own, ref: forget_quality(_finite(own), _finite(ref)), feature="float64"))
    r(Metric("model_utility", "Harmonic mean of probability, ROUGE-L recall and truth ratio on the retain, real-author "
             "and world-fact sets (9 numbers).", "higher", "retain",
             tuple(f"agg.{p}_{k}" for p, _ in _UTILITY_SPLITS for k in ("prob", "rouge", "truth_ratio")), _utility,
             feature=None))
    r(Metric("forget_truth_ratio", "mean(min(R, 1/R)) on the forget set, R = geometric-mean probability of perturbed "
             "answers / probability of the correct answer (length-normalised; the paraphrased answer on TOFU, the "
             "original on the embedded world: settings.truth_ratio_answer). 1 = true and false answers equally "
             "likely.", "higher", "forget", ("forget.truth_ratio",), _truth_ratio(truth_ratio_closer_to_1)))
    r(Metric("forget_prob", "Mean length-normalised probability exp(-mean NLL) of the forget-set answers (EOS "
             "included; rwku: of the target's forget-probe answers).", "lower", "forget", ("forget.prob",), mean,
             ("tofu", "rwku")))
    r(Metric("forget_rouge", "Mean ROUGE-L recall of greedy answers to forget-set questions vs the true answers "
             "(rwku: the target's forget probes).", "lower", "forget", ("forget.rouge",), mean, ("tofu", "rwku")))
    for role, what in (("neighbor", "probes about the target's neighbours (related knowledge that must be kept)"),
                       ("utility", "general-knowledge probes")):
        r(Metric(f"{role}_rouge", f"RWKU: mean ROUGE-L recall of greedy answers to {what} vs the true answers.",
                 "higher", role, (f"{role}.rouge",), mean, ("rwku",)))
        r(Metric(f"{role}_prob", f"RWKU: mean length-normalised answer probability exp(-mean NLL) on {what}.",
                 "higher", role, (f"{role}.prob",), mean, ("rwku",)))
    r(Metric("privleak", "MUSE PrivLeak (%): (s - r) / r * 100 with s = 1 - AUC(Min-K%, k=0.4, forget vs holdout) of "
             "this model and r the same for the retain model. ~0 ideal; << 0 under-unlearned; >> 0 over-unlearned.",
             "ideal", "forget", ("agg.mia_min_k_auc", "reference.mia_min_k_auc"), privleak, _BOTH, ideal=0.0,
             undefined_note="privleak is undefined: the reference model's Min-K% AUC is 1.", feature=None))
    r(Metric("extraction_strength", "Mean 1 - k*/|y| over forget answers (EOS excluded): k* = shortest prefix after "
             "which the teacher-forced greedy predictions reproduce the rest.", "lower", "forget",
             ("forget.extraction_strength",), mean, _BOTH))
    r(Metric("exact_memorization", "Share of forget-answer tokens (EOS excluded) whose teacher-forced argmax is the "
             "label.", "lower", "forget", ("forget.exact_memorization",), mean, _BOTH))
    r(Metric("forget_verbmem_rouge", "MUSE VerbMem: ROUGE-L F1 of greedy continuations of forget-passage prefixes vs "
             "the true continuation.", "lower", "forget", ("forget.verbmem_rouge",), mean, ("muse",)))
    r(Metric("forget_knowmem_rouge", "MUSE KnowMem on the forget set: ROUGE-L F1 of greedy answers.", "lower",
             "forget", ("knowmem_forget.rouge",), mean, ("muse",)))
    r(Metric("retain_knowmem_rouge", "MUSE KnowMem on the retain set (utility preservation): ROUGE-L F1.", "higher",
             "retain", ("knowmem_retain.rouge",), mean, ("muse",)))
    r(Metric("retain_prob", "Mean length-normalised answer probability on the retain set.", "higher", "retain",
             ("retain.prob",), mean))
    r(Metric("retain_rouge", "Mean ROUGE-L recall of greedy answers on the retain set.", "higher", "retain",
             ("retain.rouge",), mean))
    r(Metric("retain_truth_ratio", "mean(max(0, 1 - R)) on the retain set (correct vs perturbed answers, as the "
             "forget set).", "higher", "retain", ("retain.truth_ratio",), _truth_ratio(truth_ratio_true_better)))
    for prefix, split, label in (("ra", "real_authors", "Real authors"), ("wf", "world_facts", "World facts")):
        r(Metric(f"{prefix}_prob", f"{label}: p(answer) / (p(answer) + sum of p(perturbed)), length-normalised.",
                 "higher", split, (f"{split}.prob",), mean))
        r(Metric(f"{prefix}_rouge", f"{label}: mean ROUGE-L recall of greedy answers.", "higher", split,
                 (f"{split}.rouge",), mean))
        r(Metric(f"{prefix}_truth_ratio", f"{label}: mean(max(0, 1 - R)), original vs perturbed answers.", "higher",
                 split, (f"{split}.truth_ratio",), _truth_ratio(truth_ratio_true_better)))
    for attack, label in (("mia_loss", "LOSS (mean NLL, EOS included)"),
                          ("mia_zlib", "ZLib (NLL with EOS / zlib bytes)"),
                          ("mia_min_k", "Min-K% (k=0.4, EOS excluded)"),
                          ("mia_min_k_plus_plus", "Min-K%++ (k=0.4, EOS excluded)")):
        r(Metric(f"{attack}_auc", _MIA.format(attack=label), "ideal", "forget",
                 (f"forget.{attack}", f"holdout.{attack}"), lambda f, h: mia_auc(_finite(f), _finite(h)), _BOTH,
                 ideal=0.5))
    r(Metric("mia_reference_auc", _MIA.format(attack="reference-model (NLL with EOS minus the retain model's NLL)"),
             "ideal", "forget", ("forget.mia_reference", "holdout.mia_reference"),
             lambda f, h: mia_auc(_finite(f), _finite(h)), _BOTH, ideal=0.5, stage="reference"))
    # robustness attacks (hfcl.eval.attacks), on the forget rows the relearning attack did not see
    attacks = (("relearn", "after the relearning attack (fine-tuned on the other forget rows)"),
               ("quant8", "after 8-bit round-to-nearest weight quantization"),
               ("quant4", "after 4-bit round-to-nearest weight quantization"),
               ("unguard", "of the weights without the inference-time guard (ECO, GuardFilter, GuardPrompt; a model "
                           "whose weights changed is its own unguarded model)"))
    for attack, how in attacks:
        for key, what in (("prob", "answer probability"), ("rouge", "ROUGE-L recall of greedy answers")):
            r(Metric(f"robustness_{attack}_forget_{key}", f"Forget {what} {how}; what an attacker recovers.",
                     "lower", "forget", (f"attack.{attack}_forget_{key}",), float, ("tofu",), stage="attack",
                     feature=None))
            r(Metric(f"robustness_{attack}_gain_{key}", f"Forget {what} {how} minus before it, on the same rows: "
                     "how much the attack restores (compare with the retain model's, the control).", "lower",
                     "forget", (f"attack.{attack}_gain_{key}",), float, ("tofu",), stage="attack", feature=None))
    # continual learning, from the accuracy matrix R (row 0 = before any task; see hfcl.eval.metrics.continual)
    cl = ("continual",)
    r(Metric("final_average_accuracy", "ACC = mean_j R[T, j]: score on every task after the last one.", "higher",
             "test", ("R",), final_average_accuracy, cl, feature=None))
    r(Metric("average_incremental_accuracy", "mean_k mean_{j<=k} R[k, j]: average score on the tasks seen so far, "
             "over the stream.", "higher", "test", ("R",), average_incremental_accuracy, cl, feature=None))
    r(Metric("backward_transfer", "BWT = mean_{j<T} (R[T, j] - R[j, j]); negative = forgetting.", "higher", "test",
             ("R",), backward_transfer, cl, feature=None))
    r(Metric("forward_transfer", "FWT = mean_{j>=2} (R[j-1, j] - b_j), b = the base model's row R[0] (or given "
             "baseline scores).", "higher", "test", ("R",), forward_transfer, cl, feature=None))
    r(Metric("average_forgetting", "mean_{j<T} (max_{l<T} R[l, j] - R[T, j]) (Chaudhry et al.; settings."
             "forgetting_reference gives the variant).", "lower", "test", ("R",), average_forgetting, cl,
             feature=None))
    r(Metric("intransigence", "mean_k (a*_k - R[k, k]), a* = scores of a model trained jointly on all tasks.",
             "lower", "test", ("R", "joint"), lambda R, joint: float(np.mean(intransigence(R, joint))), cl,
             feature=None))


_register_all()
