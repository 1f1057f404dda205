"""The strategy interface: hooks the :class:`~hfcl.continual.ContinualTrainer` calls, and the registry.

A strategy is a small object that lives for the whole stream (its state carries over between tasks and is saved with
every stage for resuming). Every hook is optional:

* ``begin_task(trainer, k)`` before task ``k`` trains (snapshots, new adapters);
* ``training_rows(trainer, k, rows) -> rows`` the tokenized rows task ``k`` trains on (replay mixes here);
* ``penalty(trainer, model, inputs, outputs) -> [Term]`` loss terms of one micro-batch, scaled by the trainer's one
  helper so each is counted once per optimizer step;
* ``quadratic_terms(trainer) -> [Quadratic]`` parameter penalties ``c Σ_i w_i (θ_i − θ*_i)²`` (EWC, L2): the trainer
  adds their exact gradient once per optimizer step, before clipping, with ``torch._foreach_*`` ops (no autograd
  graph over the parameters in every micro-batch);
* ``on_optimizer_step(trainer)`` after every optimizer step (EMA);
* ``end_task(trainer, k)`` after task ``k`` trained (Fisher, buffer update);
* ``on_forget(trainer, k, indices)`` after a deletion request unlearned rows ``indices`` of task ``k``: a strategy
  must not bring them back (replay drops them from its buffer; anchors and averages move to the unlearned weights);
* ``state_dict()`` / ``load_state_dict(state)``: tensors under ``"tensors"``, JSON-able values elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch


@dataclass
class Term:
    """A loss term of one micro-batch.

    ``kind="step"``: a function of the parameters only (EWC, L2, O-LoRA), the same for every micro-batch of a step;
    the trainer counts it once per optimizer step. ``kind="token"``: a *sum* over this micro-batch's answer tokens
    (LwF's KL); the trainer divides it by the answer tokens of the whole step, exactly like the task loss.
    """

    name: str
    value: torch.Tensor
    kind: Literal["step", "token"] = "step"


@dataclass
class Quadratic:
    """A parameter penalty ``coef · Σ_i w_i (θ_i − θ*_i)²`` over the names in ``anchor`` (``w = 1`` without
    ``weight``), counted once per optimizer step; several with the same ``name`` are logged as their sum."""

    name: str
    coef: float
    anchor: dict[str, torch.Tensor]
    weight: dict[str, torch.Tensor] | None = None


class Strategy:
    """Base class: does nothing (which is the ``naive`` strategy)."""

    name = "naive"
    needs_peft = False

    def __init__(self, args) -> None:
        self.args = args

    def setup(self, trainer) -> None:
        """Called once the trainer exists; raise a ConfigError here for an unusable combination."""

    def begin_task(self, trainer, task_index: int) -> None:
        pass

    def training_rows(self, trainer, task_index: int, rows: list[dict]) -> list[dict]:
        return rows

    def penalty(self, trainer, model, inputs: dict[str, Any], outputs) -> list[Term]:
        return []

    def quadratic_terms(self, trainer) -> list[Quadratic]:
        return []

    def on_optimizer_step(self, trainer) -> None:
        pass

    def end_task(self, trainer, task_index: int) -> None:
        pass

    def on_forget(self, trainer, task_index: int, indices: list[int]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached fp32 copies of (unwrapped) parameters: never a deepcopy of a wrapped model. FSDP2 (DTensor)
    parameters are gathered whole (every process must call this), so anchors can be saved and compared."""
    from ...utils.distributed import full_tensor

    return {n: full_tensor(p.detach()).float().clone() for n, p in params.items()}


def squared_distance(params: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor],
                     weight: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``Σ_i w_i (θ_i − θ*_i)²`` over the names in ``anchor`` (``w = 1`` without ``weight``)."""
    from ...utils.distributed import full_tensor, local_like

    total = None
    for name, ref in anchor.items():
        p = params[name]  # an FSDP2 parameter is a DTensor shard: the whole anchor is sliced to match it
        diff = (p.float() - local_like(ref, p)).square()
        term = (diff * local_like(weight[name], p)).sum() if weight is not None else diff.sum()
        term = full_tensor(term)  # sharded: the sum over every process's shard (differentiable)
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


@torch.no_grad()
def add_quadratic_grad_(params: dict[str, torch.Tensor], q: Quadratic, grad_scale: float = 1.0,
                        with_value: bool = False) -> torch.Tensor | None:
    """Add ``grad_scale ·`` the exact gradient ``2 c w (θ − θ*)`` of ``q`` to ``.grad`` of the trainable parameters.

    The gradient is that of :func:`squared_distance` times ``q.coef`` (a parameter whose ``.grad`` is ``None`` gets
    one); frozen parameters get none, as under autograd. With ``with_value`` it also returns the penalty's value over
    every name in ``q.anchor`` (frozen ones included, like the formula), else ``None``.
    """
    names = [n for n in q.anchor if n in params]
    if not names:
        return torch.zeros(()) if with_value else None
    ps = [params[n] for n in names]
    diff = torch._foreach_sub([p.detach().float() for p in ps], [q.anchor[n].to(p.device) for n, p in zip(names, ps)])
    weights = [q.weight[n].to(p.device) for n, p in zip(names, ps)] if q.weight is not None else None
    value = None
    if with_value:
        value = torch.stack([((d * w) * d).sum() if weights is not None else d.square().sum()
                             for d, w in zip(diff, weights or diff)]).sum().cpu() * q.coef
    alpha = 2.0 * q.coef * grad_scale
    fast, slow = [], []  # fp32 gradients take one fused grad += alpha * w * diff; others are cast per tensor
    for k, p in enumerate(ps):
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        (fast if p.grad.dtype == diff[k].dtype else slow).append(k)
    if fast:
        grads = [ps[k].grad for k in fast]
        if weights is not None:
            torch._foreach_addcmul_(grads, [weights[k] for k in fast], [diff[k] for k in fast], value=alpha)
        else:
            torch._foreach_add_(grads, [diff[k] for k in fast], alpha=alpha)
    for k in slow:
        g = diff[k] * weights[k] if weights is not None else diff[k]
        ps[k].grad.add_(g.to(ps[k].grad.dtype), alpha=alpha)
    return value
