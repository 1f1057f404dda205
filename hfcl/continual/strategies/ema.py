"""EMA of the weights (slow weights ``θ_ema ← d·θ_ema + (1 − d)·θ`` after every optimizer step).

At each task's end the model takes the EMA weights, so every stage of the stream is evaluated, and the next task
starts, from the slow weights: an interpolation between the previous tasks' solution and the new one (WiSE-FT-like).
"""

from __future__ import annotations

import torch

from .base import Strategy, snapshot


class EMA(Strategy):
    name = "ema"

    def __init__(self, args) -> None:
        super().__init__(args)
        self.shadow: dict[str, torch.Tensor] = {}

    def begin_task(self, trainer, task_index):
        params = trainer.trainable_params()
        if set(self.shadow) != set(params):
            self.shadow = {**snapshot(params), **{n: v for n, v in self.shadow.items() if n in params}}

    @torch.no_grad()
    def on_optimizer_step(self, trainer):
        d = self.args.ema_decay
        for n, p in trainer.trainable_params().items():
            if n in self.shadow:
                self.shadow[n].mul_(d).add_(p.detach().float().to(self.shadow[n].device), alpha=1 - d)

    @torch.no_grad()
    def end_task(self, trainer, task_index):
        for n, p in trainer.trainable_params().items():
            if n in self.shadow:
                p.copy_(self.shadow[n].to(p.device, p.dtype))

    def on_forget(self, trainer, task_index, indices):
        """The average restarts at the unlearned weights (the old shadow still holds the deleted rows)."""
        self.shadow = snapshot(trainer.trainable_params())

    def state_dict(self):
        return {"tensors": {f"shadow.{n}": v for n, v in self.shadow.items()}}

    def load_state_dict(self, state):
        self.shadow = {n[len("shadow."):]: v for n, v in state.get("tensors", {}).items()}
