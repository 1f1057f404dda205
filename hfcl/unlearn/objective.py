"""The cheap before/after check every unlearning run ends with: how well the model still answers the forget set.

Two numbers from :mod:`hfcl.eval.scoring`'s batched passes (one teacher-forced pass, one greedy generation):

* ``forget_rouge_l``: mean ROUGE-L recall of the greedy answer against the forget answer (TOFU's forget ROUGE);
* ``forget_answer_prob``: mean per-token probability of the forget answer, ``exp(-mean NLL)`` (TOFU's forget
  probability, EOS included as in ``hfcl eval``).
"""

from __future__ import annotations

import math
from typing import Any

# A change smaller than this in both numbers counts as "nothing moved".
MOVED = {"forget_rouge_l": 0.01, "forget_answer_prob": 0.01}


def forget_objective(model, tokenizer, rows: list[dict[str, Any]], batch_size: int = 32, max_new_tokens: int = 64,
                     max_length: int = 256) -> dict[str, float]:
    """``{"forget_rouge_l": ..., "forget_answer_prob": ...}`` of ``model`` on the forget ``rows`` (any format)."""
    import numpy as np

    from ..data.formatting import example_to_messages
    from ..eval.metrics.rouge import rouge_l_recall
    from ..eval.scoring import ScoringPlan

    plan = ScoringPlan(tokenizer, max_length)
    sequences, prompts, answers = [], [], []
    for row in rows:
        messages, answer = example_to_messages(row)
        question = messages[-1]["content"]
        sequences.append(plan.qa(question, answer))
        prompts.append(plan.question_prompt(question))
        answers.append(answer)
    was_training = model.training
    model.eval()
    try:
        scores = plan.score(model, batch_size=batch_size, distributed=False)
        generated = plan.generate(model, max_new_tokens, batch_size=batch_size, distributed=False)
    finally:
        model.train(was_training)
    rouge = rouge_l_recall([generated[i] for i in prompts], answers)
    prob = [math.exp(-scores[i].avg_nll) for i in sequences]
    return {"forget_rouge_l": round(float(np.mean(rouge)), 4), "forget_answer_prob": round(float(np.mean(prob)), 4)}


def moved(before: dict[str, float], after: dict[str, float]) -> bool:
    """True when either number changed by more than :data:`MOVED`."""
    return any(abs(after[k] - before[k]) > tol for k, tol in MOVED.items())


def format_change(before: dict[str, float], after: dict[str, float]) -> str:
    return (f"forget ROUGE-L {before['forget_rouge_l']:.3f} -> {after['forget_rouge_l']:.3f}, forget answer "
            f"probability {before['forget_answer_prob']:.3f} -> {after['forget_answer_prob']:.3f}")


__all__ = ["MOVED", "forget_objective", "format_change", "moved"]
