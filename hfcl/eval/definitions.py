"""What each reported number means and which way is better: the single source that reports and cards render."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDefinition:
    """A reported metric: its meaning, and whether ``higher``, ``lower`` or closer to ``ideal`` is better."""

    name: str
    description: str
    direction: str  # "higher" | "lower" | "ideal"
    ideal: float | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower", "ideal"):
            raise ValueError(f"direction must be 'higher', 'lower' or 'ideal', got {self.direction!r}.")
        if self.direction == "ideal" and self.ideal is None:
            raise ValueError(f"{self.name}: direction 'ideal' needs an ideal value.")

    @property
    def arrow(self) -> str:
        """``↑``, ``↓`` or ``→x`` for tables."""
        if self.direction == "ideal":
            return f"→{self.ideal:g}"
        return "↑" if self.direction == "higher" else "↓"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _d(name: str, description: str, direction: str, ideal: float | None = None) -> MetricDefinition:
    return MetricDefinition(name, description, direction, ideal)


_MIA = ("ROC AUC of the {attack} membership score, forget set (label 0) vs never-trained holdout (label 1); 1 = "
        "forget set recognisably memorised, 0.5 = no signal (the retain model's value is the goal).")

DEFINITIONS: dict[str, MetricDefinition] = {d.name: d for d in [
    _d("forget_quality", "p-value of the two-sample KS test between the per-question forget-set truth ratios of this "
       "model and of the retain-only model (reference log). 1.0 = indistinguishable; > 0.05 passes TOFU's bar.",
       "higher"),
    _d("model_utility", "Harmonic mean of probability, ROUGE-L recall and truth ratio on the retain, real-author and "
       "world-fact sets (9 numbers).", "higher"),
    _d("forget_truth_ratio", "mean(min(R, 1/R)) on the forget set, R = geometric-mean probability of perturbed answers "
       "/ probability of the correct answer (length-normalised; the paraphrased answer on TOFU, the original on the "
       "embedded world: settings.truth_ratio_answer). 1 = true and false answers equally likely.", "higher"),
    _d("forget_prob", "Mean length-normalised probability exp(-mean NLL) of the forget-set answers.", "lower"),
    _d("forget_rouge", "Mean ROUGE-L recall of greedy answers to forget-set questions vs the true answers.", "lower"),
    _d("retain_prob", "Mean length-normalised answer probability on the retain set.", "higher"),
    _d("retain_rouge", "Mean ROUGE-L recall of greedy answers on the retain set.", "higher"),
    _d("retain_truth_ratio", "mean(max(0, 1 - R)) on the retain set (correct vs perturbed answers, as the forget set).",
       "higher"),
    _d("ra_prob", "Real authors: p(answer) / (p(answer) + sum of p(perturbed)), length-normalised.", "higher"),
    _d("ra_rouge", "Real authors: mean ROUGE-L recall of greedy answers.", "higher"),
    _d("ra_truth_ratio", "Real authors: mean(max(0, 1 - R)), original vs perturbed answers.", "higher"),
    _d("wf_prob", "World facts: p(answer) / (p(answer) + sum of p(perturbed)), length-normalised.", "higher"),
    _d("wf_rouge", "World facts: mean ROUGE-L recall of greedy answers.", "higher"),
    _d("wf_truth_ratio", "World facts: mean(max(0, 1 - R)), original vs perturbed answers.", "higher"),
    _d("privleak", "MUSE PrivLeak (%): (s - r) / r * 100 with s = 1 - AUC(Min-K%, k=0.4, forget vs holdout) of this "
       "model and r the same for the retain model. ~0 ideal; << 0 under-unlearned; >> 0 over-unlearned.", "ideal", 0.0),
    _d("extraction_strength", "Mean 1 - k*/|y| over forget answers (EOS excluded): k* = shortest prefix after which "
       "the teacher-forced greedy predictions reproduce the rest.", "lower"),
    _d("exact_memorization", "Share of forget-answer tokens (EOS excluded) whose teacher-forced argmax is the label.",
       "lower"),
    _d("mia_loss_auc", _MIA.format(attack="LOSS (mean NLL)"), "ideal", 0.5),
    _d("mia_zlib_auc", _MIA.format(attack="ZLib (NLL / zlib bytes)"), "ideal", 0.5),
    _d("mia_min_k_auc", _MIA.format(attack="Min-K% (k=0.4)"), "ideal", 0.5),
    _d("mia_min_k_plus_plus_auc", _MIA.format(attack="Min-K%++ (k=0.4)"), "ideal", 0.5),
    _d("mia_reference_auc", _MIA.format(attack="reference-model (NLL minus the retain model's NLL)"), "ideal", 0.5),
    _d("forget_verbmem_rouge", "MUSE VerbMem: ROUGE-L F1 of greedy continuations of forget-passage prefixes vs the "
       "true continuation.", "lower"),
    _d("forget_knowmem_rouge", "MUSE KnowMem on the forget set: ROUGE-L F1 of greedy answers.", "lower"),
    _d("retain_knowmem_rouge", "MUSE KnowMem on the retain set (utility preservation): ROUGE-L F1.", "higher"),
    # continual learning, from the accuracy matrix R (row 0 = before any task; see hfcl.eval.metrics.continual)
    _d("final_average_accuracy", "ACC = mean_j R[T, j]: score on every task after the last one.", "higher"),
    _d("average_incremental_accuracy", "mean_k mean_{j<=k} R[k, j]: average score on the tasks seen so far, over "
       "the stream.", "higher"),
    _d("backward_transfer", "BWT = mean_{j<T} (R[T, j] - R[j, j]); negative = forgetting.", "higher"),
    _d("forward_transfer", "FWT = mean_{j>=2} (R[j-1, j] - b_j), b = the base model's row R[0] (or given "
       "baseline scores).", "higher"),
    _d("average_forgetting", "mean_{j<T} (max_{l<T} R[l, j] - R[T, j]) (Chaudhry et al.; settings."
       "forgetting_reference gives the variant).", "lower"),
    _d("intransigence", "mean_k (a*_k - R[k, k]), a* = scores of a model trained jointly on all tasks.", "lower"),
]}


def definitions_for(names) -> dict[str, MetricDefinition]:
    """Definitions of ``names`` (unknown names are skipped)."""
    return {n: DEFINITIONS[n] for n in names if n in DEFINITIONS}
