"""Optimizer-level options that wrap any unlearning loss.

* **SalUn** (Fan et al., ICLR'24): a weight-saliency mask ``m = 1[|∇_θ L_f(θ_0)| ≥ threshold]`` keeping
  the top ``sparsity`` fraction of trainable weights (one global threshold). Gradients of the other weights are
  zeroed and, after every optimizer step, their values are restored, so ``θ_u = m⊙θ + (1-m)⊙θ_0`` holds exactly
  even with weight decay. The saliency gradient is that of gradient ascent (the forget NLL), as in the paper.
* **SOUL** (Jia et al., EMNLP'24): Sophia-style clipped second-order updates:
  ``m ← β1·m + (1-β1)·g``, ``h ← β2·h + (1-β2)·g⊙g``, ``θ ← θ(1-lr·wd) - lr·sign(m)·min(|m|/(ρ·bs·h + ε), 1)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def saliency_masks(grads: dict[str, torch.Tensor], sparsity: float) -> dict[str, torch.Tensor]:
    """Boolean masks selecting the ``sparsity`` fraction of entries with the largest ``|grad|`` (global threshold)."""
    flat = torch.cat([g.detach().abs().flatten().float() for g in grads.values()])
    k = max(1, round(sparsity * flat.numel()))
    threshold = torch.topk(flat, k).values.min()
    return {name: g.detach().abs().float() >= threshold for name, g in grads.items()}


class SaliencyMask:
    """Apply SalUn masks to parameters: gradient hooks plus a post-step restore of the frozen entries."""

    def __init__(self, params: dict[str, torch.nn.Parameter], masks: dict[str, torch.Tensor]):
        self.params, self.masks = params, {n: m.to(params[n].device) for n, m in masks.items()}
        self.initial = {n: p.detach().clone() for n, p in params.items()}
        self.handles = [p.register_hook(lambda g, m=self.masks[n]: g * m.to(g.dtype)) for n, p in params.items()]

    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.handles.append(optimizer.register_step_post_hook(lambda *_: self.restore()))

    @torch.no_grad()
    def restore(self) -> None:
        for name, p in self.params.items():
            p.copy_(torch.where(self.masks[name], p, self.initial[name]))

    def fraction(self) -> float:
        total = sum(m.numel() for m in self.masks.values())
        return sum(int(m.sum()) for m in self.masks.values()) / max(total, 1)


class SophiaG(torch.optim.Optimizer):
    """Sophia with the squared-gradient (Gauss-Newton-style) Hessian-diagonal estimate, as used by SOUL."""

    def __init__(self, params: Iterable, lr: float = 1e-5, betas: tuple[float, float] = (0.9, 0.95),
                 rho: float = 0.04, weight_decay: float = 0.0, batch_size: int = 1, eps: float = 1e-15):
        if lr < 0 or rho <= 0:
            raise ValueError(f"invalid SophiaG lr={lr} / rho={rho}")
        super().__init__(params, {"lr": lr, "betas": betas, "rho": rho, "weight_decay": weight_decay,
                                  "batch_size": batch_size, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.float()
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(g)
                    state["hessian"] = torch.zeros_like(g)
                state["step"] += 1
                m, h = state["exp_avg"], state["hessian"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                h.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                ratio = (m.abs() / (group["rho"] * group["batch_size"] * h + group["eps"])).clamp(max=1.0)
                p.add_((m.sign() * ratio).to(p.dtype), alpha=-group["lr"])
        return loss


__all__ = ["SaliencyMask", "SophiaG", "saliency_masks"]
