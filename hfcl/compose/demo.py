"""Unlearning by negation on the embedded world, with before/after numbers (the compose part of ``hfcl demo``).

One forget LoRA is trained on the forget split on top of ``target``; because subtraction is exact and cheap, every
``lam`` in ``lams`` is then evaluated from that one LoRA: ``W_target - lam * dW_forget``. For each model (target, each
negation, and the ``retain`` gold model as the reference) the demo reports on the forget and retain splits:

* ``rouge_l``: mean ROUGE-L recall of the greedy answer against the true answer (lower on forget = forgotten);
* ``prob``: mean per-token probability of the true answer, ``exp(-mean NLL)`` (TOFU's answer probability).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from ..utils.logging import get_logger

logger = get_logger(__name__)


def split_scores(model: Any, tokenizer: Any, rows: Sequence[dict[str, Any]]) -> dict[str, float]:
    """``{"rouge_l": mean ROUGE-L recall of greedy answers, "prob": mean answer probability}`` on TOFU rows."""
    from ..eval.metrics.rouge import rouge_l_recall
    from ..zoo.train import greedy_answers
    from .negation import answer_nll

    answers = greedy_answers(model, tokenizer, [r["question"] for r in rows])
    prob = float(answer_nll(model, tokenizer, rows).neg().exp().mean())
    rouge = rouge_l_recall(answers, [r["answer"] for r in rows])
    return {"rouge_l": float(rouge.mean()) if rouge.size else 0.0, "prob": prob}


def negation_demo(zoo_config: Any = None, forget_split: str = "forget10", lams: Sequence[float] = (1.0, 2.0, 4.0),
                  retain_limit: int | None = 64, r: int = 8, lora_alpha: float = 16, epochs: float = 5.0,
                  learning_rate: float = 3e-3, seed: int = 0, output_dir: str | None = None,
                  overwrite: bool = False, console: Any = None) -> dict[str, Any]:
    """Train a forget LoRA on ``target``, negate it with each ``lam``, and score target / negated / retain models.

    Returns ``{"models": {label: {"forget": {...}, "retain": {...}}}, "lams": [...], "forget_examples": n,
    "seconds": s, "output_dir": path or None}`` with labels ``target``, ``negation lam=<lam>`` and ``retain``.
    With ``output_dir`` the run of the largest ``lam`` is saved as a standard run directory (full model +
    ``forget_adapter/``). ``console`` (a ``rich`` Console) prints a table.
    """
    lams = [float(x) for x in lams]
    if not lams or any(x <= 0 for x in lams):
        raise ConfigError(f"lams must be positive numbers, got {lams}.")
    from ..data import load_tofu
    from ..zoo import load_model
    from .algebra import Combination
    from .apply import merge_into_model
    from .negation import unlearn_by_negation

    started = time.perf_counter()
    splits = load_tofu(forget_split, world_config=zoo_config)
    forget = splits["forget"].to_list()
    retain = splits["retain"].to_list()
    if retain_limit:
        retain = retain[:retain_limit]
    target, tokenizer = load_model("target", zoo_config, forget_split)
    run = unlearn_by_negation(target, forget, lam=max(lams), output_dir=output_dir, tokenizer=tokenizer, r=r,
                              lora_alpha=lora_alpha, epochs=epochs, learning_rate=learning_rate, seed=seed,
                              overwrite=overwrite)
    models: dict[str, Any] = {"target": target}
    for lam in lams:
        negated = Combination.of(run.forget_adapter, -lam).linear(name=f"negation_{lam:g}")
        models[f"negation lam={lam:g}"] = merge_into_model(copy.deepcopy(target), negated).eval()
    models["retain"] = load_model("retain", zoo_config, forget_split)[0]
    scores = {label: {"forget": split_scores(m, tokenizer, forget), "retain": split_scores(m, tokenizer, retain)}
              for label, m in models.items()}
    result = {"models": scores, "lams": lams, "forget_split": forget_split, "forget_examples": len(forget),
              "retain_examples": len(retain), "seconds": round(time.perf_counter() - started, 2),
              "output_dir": str(run.output_dir) if run.output_dir else None}
    if console is not None:
        print_table(result, console)
    return result


def print_table(result: dict[str, Any], console: Any) -> None:
    """The demo's numbers as one rich table."""
    from rich.table import Table

    table = Table(title=f"Unlearning by negation of a forget LoRA ({result['forget_split']}, "
                        f"{result['forget_examples']} forget questions)")
    columns = ("model", "forget ROUGE-L ↓", "forget answer prob ↓", "retain ROUGE-L ↑", "retain answer prob ↑")
    for column in columns:
        table.add_column(column)
    for label, s in result["models"].items():
        table.add_row(label, f"{s['forget']['rouge_l']:.3f}", f"{s['forget']['prob']:.3f}",
                      f"{s['retain']['rouge_l']:.3f}", f"{s['retain']['prob']:.3f}")
    console.print(table)
    console.print(f"One forget LoRA, every lambda exact: W_target - lambda * dW_forget ({result['seconds']:.1f}s).")
