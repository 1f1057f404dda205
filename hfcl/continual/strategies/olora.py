"""O-LoRA (Wang et al., EMNLP 2023 Findings, arXiv 2310.14152): a new LoRA per task, earlier ones frozen.

Term of task ``t``: ``λ1 Σ_modules Σ_{i<t} Σ_{j,k} |(A_i A_tᵀ)_{jk}| + λ2 ‖θ_LoRA_t‖²``, with ``A`` PEFT's ``lora_A``
(the down-projection). The absolute-value form is the authors' released code; the paper writes the squared one. All
adapters stay active, so the model computes ``W₀ + Σ_t B_t A_t``; at the end the per-task adapters are combined with
:func:`hfcl.compose.compose` (``olora_merge='linear'`` is that exact sum).
"""

from __future__ import annotations

import copy

import torch

from ...errors import ConfigError
from .base import Strategy, Term

FIRST = "default"


def adapter_name(task_index: int) -> str:
    return FIRST if task_index == 0 else f"task{task_index + 1}"


def lora_a(model, adapter: str) -> dict[str, torch.Tensor]:
    """``module name -> lora_A weight`` of ``adapter`` (shape ``r × in``)."""
    out = {}
    for name, module in model.named_modules():
        layers = getattr(module, "lora_A", None)
        if layers is not None and adapter in layers:
            out[name] = layers[adapter].weight
    return out


def orthogonality(new: dict[str, torch.Tensor], old: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """``Σ_modules Σ_old Σ |A_old A_newᵀ|``."""
    total = None
    for earlier in old:
        for name, a_new in new.items():
            term = (earlier[name].detach() @ a_new.T).abs().sum()
            total = term if total is None else total + term
    return total if total is not None else torch.zeros(())


class OLoRA(Strategy):
    name = "olora"
    needs_peft = True

    def __init__(self, args) -> None:
        super().__init__(args)
        self.adapters: list[str] = []

    def setup(self, trainer):
        if not trainer.is_peft:
            raise ConfigError("O-LoRA trains one LoRA per task: pass a peft_config (CLI: --lora true) or a PeftModel.")
        model = trainer.unwrapped
        if FIRST not in model.peft_config:
            raise ConfigError(f"O-LoRA expects the PEFT model's first adapter to be named {FIRST!r}.")

    def begin_task(self, trainer, task_index):
        model = trainer.unwrapped
        name = adapter_name(task_index)
        if name not in model.peft_config:
            model.add_adapter(name, copy.deepcopy(model.peft_config[FIRST]))
        self.adapters = [adapter_name(k) for k in range(task_index + 1)]
        model.base_model.set_adapter(self.adapters)  # all active: the model is W0 + sum of every task's BA
        for n, p in model.named_parameters():
            if "lora_" in n:
                p.requires_grad_(f".{name}." in n)
        device = next(model.parameters()).device
        model.to(device)

    def penalty(self, trainer, model, inputs, outputs):
        if not self.adapters:
            return []
        unwrapped = trainer.unwrapped
        new = lora_a(unwrapped, self.adapters[-1])
        terms = []
        if len(self.adapters) > 1 and self.args.olora_lambda_orth:
            old = [lora_a(unwrapped, a) for a in self.adapters[:-1]]
            terms.append(Term("olora_orth", self.args.olora_lambda_orth * orthogonality(new, old)))
        if self.args.olora_lambda_l2:
            own = [p for n, p in trainer.trainable_params().items() if f".{self.adapters[-1]}." in n]
            terms.append(Term("olora_l2", self.args.olora_lambda_l2 * sum(p.float().square().sum() for p in own)))
        return terms

    def state_dict(self):
        return {"adapters": list(self.adapters)}

    def load_state_dict(self, state):
        self.adapters = list(state.get("adapters", []))


def merged_adapter(model, adapters: list[str], method: str = "linear"):
    """The per-task adapters combined by :func:`hfcl.compose.compose` (``linear``: their exact sum)."""
    from ...compose import adapter_from_peft_model, add, compose

    parts = [adapter_from_peft_model(model, a) for a in adapters]
    combination = add(*parts) if len(parts) > 1 else parts[0]
    return compose(combination, method=method)
