"""Score every task of a stream after a stage with the batched scorer of :mod:`hfcl.eval.scoring`.

One :class:`~hfcl.eval.scoring.ScoringPlan` holds every task's eval rows (and the probe's), so a stage costs one
teacher-forced pass (``probability``) and one batched greedy generation (``rouge``, ``exact_match``), shared between
the processes of an ``accelerate launch``.

* ``probability``: mean length-normalised answer probability ``exp(-mean NLL of the answer tokens)`` (TOFU's);
* ``rouge``: mean ROUGE-L recall of the greedy answer against the reference answer (TOFU's);
* ``exact_match``: share of greedy answers equal to the reference after lower-casing and stripping spaces and final
  punctuation.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence

import numpy as np

from ..data.formatting import example_to_messages, prompt_ids, tokenize_example
from .stream import Task


def normalise(text: str) -> str:
    return " ".join(str(text).lower().split()).rstrip(string.punctuation + " ")


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> np.ndarray:
    return np.array([normalise(p) == normalise(r) for p, r in zip(predictions, references)], dtype=np.float64)


def score_tasks(model, tokenizer, tasks: Sequence[Task], batch_size: int = 32, max_length: int = 256,
                max_new_tokens: int | None = None, distributed: bool = True) -> list[float]:
    """The metric of each task on its eval rows, in order."""
    from ..eval.metrics.rouge import rouge_l_recall
    from ..eval.metrics.tofu import answer_probability
    from ..eval.scoring import ScoringPlan

    plan = ScoringPlan(tokenizer, max_length=max_length)
    wanted: list[tuple[str, list[int], list[str]]] = []
    longest = 1
    for task in tasks:
        ids, answers = [], []
        for row in task.eval:
            messages, answer = example_to_messages(row)
            answers.append(answer)
            if task.metric == "probability":
                if len(messages) == 1 and messages[0]["role"] == "user":
                    ids.append(plan.qa(messages[0]["content"], answer))
                else:
                    key = ("example", json.dumps(messages, sort_keys=True), answer)
                    ids.append(plan._add(key, lambda r=row: tokenize_example(tokenizer, r, max_length)))
            else:
                ids.append(plan.ids_prompt(prompt_ids(tokenizer, messages)))
                longest = max(longest, len(tokenizer(answer, add_special_tokens=False)["input_ids"]))
        wanted.append((task.metric, ids, answers))
    was_training = model.training
    model.eval()
    try:
        scores = plan.score(model, batch_size=batch_size, distributed=distributed) if plan.features else []
        new_tokens = max_new_tokens or min(64, longest + 4)
        texts = plan.generate(model, new_tokens, batch_size=batch_size, distributed=distributed)
    finally:
        model.train(was_training)
    out = []
    for metric, ids, answers in wanted:
        if metric == "probability":
            value = answer_probability([scores[i].avg_nll for i in ids]).mean()
        elif metric == "rouge":
            value = rouge_l_recall([texts[i] for i in ids], answers).mean()
        else:
            value = exact_match([texts[i] for i in ids], answers).mean()
        out.append(float(value))
    return out


__all__ = ["exact_match", "normalise", "score_tasks"]
