"""Parameter-space regularizers: EWC, online EWC (diagonal Fisher at each task boundary) and L2 to the previous task.

Formulas (research/continual.md §3.1, §3.2, §3.9):

* EWC: ``Σ_{k<t} (λ/2) Σ_i F_{k,i} (θ_i − θ*_{k,i})²`` with one (θ*_k, F_k) pair kept per earlier task;
* online EWC: one running pair, ``F̃ ← γ·F̃ + F_t`` and θ* = the weights after the last task;
* L2: ``(λ/2) ‖θ − θ_prev‖²`` with θ_prev the weights before the current task (L2-to-init for the first task).

The Fisher is the empirical diagonal one, averaged over mini-batches of the task's training rows
(``E_batch[(∂ NLL_batch/∂θ)²]``), computed on the unwrapped model with ``torch.autograd.grad`` (so no gradient buffer
or data-parallel hook is touched), on every process over all rows (identical on every rank), and normalised to mean
1 so that λ does not depend on the model size or token counts.

Both are :class:`~hfcl.continual.strategies.base.Quadratic` terms: the trainer adds their exact gradient
``λ F (θ − θ*)`` once per optimizer step (no autograd graph over the parameters in each micro-batch).
"""

from __future__ import annotations

import re

import torch

from ...utils.distributed import ZERO3_READS_WEIGHTS, engine, full_tensor, is_dtensor, require_engine
from .base import Quadratic, Strategy, snapshot


def anchored(params: dict[str, torch.Tensor], regex: str | None) -> dict[str, torch.Tensor]:
    """The parameters a regularizer anchors: every one, or those whose name matches ``regex``."""
    if regex is None:
        return params
    pattern = re.compile(regex)
    return {n: p for n, p in params.items() if pattern.search(n)}


def empirical_fisher(trainer, rows: list[dict], params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean over mini-batches of the squared gradient of the batch NLL (answer tokens), normalised to mean 1."""
    model = trainer.unwrapped
    was_training = model.training
    model.eval()
    names = list(params)
    fisher = {n: torch.zeros_like(params[n], dtype=torch.float32) for n in names}
    bs = trainer.args.per_device_eval_batch_size
    batches = 0
    for start in range(0, len(rows), bs):
        batch = trainer.collate(rows[start:start + bs])
        with torch.enable_grad():
            grads = _batch_grads(model, batch, [params[n] for n in names])
        for n, g in zip(names, grads):
            if g is not None:
                fisher[n] += g.detach().float().square()
        batches += 1
    model.train(was_training)
    fisher = {n: full_tensor(f) for n, f in fisher.items()}  # FSDP2: whole tensors, like the anchors
    total = sum(f.sum() for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    mean = float(total) / max(count, 1) / max(batches, 1)
    scale = 1.0 / (batches * mean) if mean > 0 else 0.0
    return {n: f * scale for n, f in fisher.items()}


def _batch_grads(model, batch: dict, ps: list[torch.Tensor]) -> list[torch.Tensor | None]:
    """``∂loss/∂p`` of the batch NLL for ``ps``. FSDP2 parameters (DTensor shards) are not in the forward's graph
    (their gathered copies are), so ``autograd.grad`` would return nothing: there the gradient is read from ``.grad``
    after a backward (FSDP averages it over processes; every process scores the same rows, so it is the exact
    gradient).

    Under FSDP2 the gradients are cleared *before* the forward: during a forward the root module's parameters are
    swapped for their unsharded copies (the root group is not resharded after forward), so ``model.zero_grad()``
    between forward and backward reaches the copies, not the shards, and the backward would add this batch's
    gradient to whatever the shards' ``.grad`` held (the last training step's), for the embedding, final norm and
    head. ``ps`` themselves are cleared too, whatever ``model.parameters()`` yields at that moment."""
    if not any(is_dtensor(p) for p in ps):
        return list(torch.autograd.grad(model(**batch).loss, ps, allow_unused=True))
    _clear_grads(model, ps)
    model(**batch).loss.backward()
    grads = [p.grad for p in ps]
    _clear_grads(model, ps)
    return grads


def refuse_zero3(trainer, option: str) -> None:
    """A penalty on the weights (θ − θ*) cannot be computed under DeepSpeed ZeRO-3: refuse it before training."""
    require_engine(engine(trainer.accelerator), {option: (("zero3",), ZERO3_READS_WEIGHTS)})


def _clear_grads(model, ps: list[torch.Tensor]) -> None:
    model.zero_grad(set_to_none=True)
    for p in ps:
        p.grad = None


class EWC(Strategy):
    """Elastic weight consolidation with one anchor and Fisher per earlier task (memory 2P per task)."""

    name = "ewc"
    online = False

    def __init__(self, args) -> None:
        super().__init__(args)
        self.anchors: list[dict[str, torch.Tensor]] = []
        self.fishers: list[dict[str, torch.Tensor]] = []

    def setup(self, trainer):
        refuse_zero3(trainer, f"strategy {self.name}")

    def end_task(self, trainer, task_index):
        params = anchored(trainer.trainable_params(), self.args.l2_params_regex)
        rows = trainer.task_rows[task_index]
        if self.args.ewc_fisher_max_examples:
            rows = rows[: self.args.ewc_fisher_max_examples]
        fisher = empirical_fisher(trainer, rows, params)
        anchor = snapshot(params)
        if self.online and self.fishers:
            fisher = {n: self.args.ewc_gamma * self.fishers[0][n] + f for n, f in fisher.items()}
            self.anchors, self.fishers = [anchor], [fisher]
        else:
            self.anchors.append(anchor)
            self.fishers.append(fisher)

    def quadratic_terms(self, trainer):
        return [Quadratic(self.name, 0.5 * self.args.ewc_lambda, a, f) for a, f in zip(self.anchors, self.fishers)]

    def on_forget(self, trainer, task_index, indices):
        """Every anchor moves to the unlearned weights (the Fisher stays): an anchor at the weights that still knew
        the deleted rows would pull the model back to them."""
        params = trainer.all_params()
        self.anchors = [snapshot({n: params[n] for n in a if n in params}) for a in self.anchors]

    def state_dict(self):
        tensors = {}
        for k, (a, f) in enumerate(zip(self.anchors, self.fishers)):
            tensors.update({f"anchor.{k}.{n}": v for n, v in a.items()})
            tensors.update({f"fisher.{k}.{n}": v for n, v in f.items()})
        return {"count": len(self.anchors), "tensors": tensors}

    def load_state_dict(self, state):
        tensors = state.get("tensors", {})
        self.anchors, self.fishers = [], []
        for k in range(int(state["count"])):
            self.anchors.append({n[len(f"anchor.{k}."):]: v for n, v in tensors.items()
                                 if n.startswith(f"anchor.{k}.")})
            self.fishers.append({n[len(f"fisher.{k}."):]: v for n, v in tensors.items()
                                 if n.startswith(f"fisher.{k}.")})


class OnlineEWC(EWC):
    """Online EWC (Progress & Compress): one running Fisher ``F̃ ← γ·F̃ + F_t`` and the last task's weights."""

    name = "online_ewc"
    online = True


class L2(Strategy):
    """L2 to the weights the current task started from (the previous task's result)."""

    name = "l2"

    def __init__(self, args) -> None:
        super().__init__(args)
        self.anchor: dict[str, torch.Tensor] = {}

    def setup(self, trainer):
        refuse_zero3(trainer, f"strategy {self.name}")

    def begin_task(self, trainer, task_index):
        self.anchor = snapshot(anchored(trainer.trainable_params(), self.args.l2_params_regex))

    def quadratic_terms(self, trainer):
        return [Quadratic(self.name, 0.5 * self.args.l2_lambda, self.anchor)] if self.anchor else []

    def on_forget(self, trainer, task_index, indices):
        if self.anchor:
            self.anchor = snapshot(anchored(trainer.trainable_params(), self.args.l2_params_regex))

    def state_dict(self):
        return {"tensors": {f"anchor.{n}": v for n, v in self.anchor.items()}}

    def load_state_dict(self, state):
        self.anchor = {n[len("anchor."):]: v for n, v in state.get("tensors", {}).items()}
