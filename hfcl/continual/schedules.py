"""Learning-rate schedules across a stream.

* ``schedule="rewarm"`` (default): the Trainer re-creates the scheduler of ``lr_scheduler_type`` at every
  ``train()`` call, i.e. at every task: re-warm and re-decay per task (Ibrahim et al. 2024; Gupta et al. 2023).
  ``lr_scheduler_type="warmup_stable_decay"`` (with ``lr_scheduler_kwargs``) passes through unchanged.
* ``schedule="infinite"``: one schedule over the whole stream's optimizer steps (the "infinite" schedule of
  arXiv 2503.02844, Eq. 1, as reconstructed in research/continual.md §7): linear warmup to the peak, cosine cooldown
  to a constant rate, the constant for as long as the stream lasts, and a short exponential anneal at the end of each
  task. The weights before the anneal are kept, and the next task continues from them.
"""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR


def infinite_base(global_step: int, warmup: int, cooldown: int, constant: float) -> float:
    """Warmup -> cosine cooldown -> constant, as a fraction of the peak learning rate."""
    if global_step < warmup:
        return (global_step + 1) / warmup
    t = global_step - warmup
    if t < cooldown:
        return constant + (1 - constant) * 0.5 * (1 + math.cos(math.pi * t / cooldown))
    return constant


def anneal_steps(task_steps: int, ratio: float) -> int:
    """Steps of the anneal at the end of a task of ``task_steps`` steps (0 when ``ratio`` is 0)."""
    return min(task_steps, round(ratio * task_steps)) if ratio > 0 else 0


def infinite_factor(global_step: int, task_step: int, task_steps: int, warmup: int, cooldown: int,
                    constant: float, minimum: float, anneal_ratio: float) -> float:
    """The infinite schedule's multiplier at ``global_step`` (stream) = ``task_step`` of a ``task_steps``-step task."""
    base = infinite_base(global_step, warmup, cooldown, constant)
    n = anneal_steps(task_steps, anneal_ratio)
    start = task_steps - n
    if n and task_step >= start:
        progress = (task_step - start + 1) / n
        return base * (minimum / constant) ** progress
    return base


def infinite_scheduler(optimizer, args, offset: int, task_steps: int) -> LambdaLR:
    """A LambdaLR for one task whose step 0 is the stream's optimizer step ``offset``."""
    def factor(step: int) -> float:
        return infinite_factor(offset + step, step, task_steps, args.infinite_warmup_steps,
                               args.infinite_cooldown_steps, args.infinite_constant_ratio, args.infinite_min_ratio,
                               args.infinite_anneal_ratio)
    return LambdaLR(optimizer, factor)


__all__ = ["anneal_steps", "infinite_base", "infinite_factor", "infinite_scheduler"]
