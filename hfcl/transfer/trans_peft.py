"""Trans-PEFT (Gu et al., ACL 2025): train an adapter that relies less on the base's FFN knowledge.

Continual pretraining of a base mostly changes what its FFN sublayers store; the task pattern an adapter learns in
attention is more stable. Two training-time perturbations make the adapter lean on the stable part:

* **knowledge masking** (rate ``p_m``): in each MLP, the intermediate activation ``act(gate(x)) * up(x)`` is
  multiplied by a Bernoulli(1 - p_m) mask before ``down_proj`` (no rescaling, as in the reference code);
* **knowledge dropping** (rate ``p_d``): per decoder layer and forward pass, with probability ``p_d`` the whole FFN
  sublayer outputs zero, so the residual stream passes through.

Both are forward hooks active only while the hooked module is in training mode, so evaluation and the saved
adapter are unchanged (inference on the new base uses the adapter as is).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from transformers import TrainerCallback

from ..errors import ConfigError
from .errors import TransferError


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}={value} must be in [0, 1).")


def ffn_modules(model) -> list[torch.nn.Module]:
    """The FFN sublayers of ``model`` (Llama-style: a module with ``down_proj``, named ``*.mlp``)."""
    found = [m for name, m in model.named_modules() if name.split(".")[-1] == "mlp" and hasattr(m, "down_proj")]
    if not found:
        raise TransferError("Trans-PEFT found no FFN sublayers (modules named '*.mlp' with a 'down_proj'); it "
                            "supports Llama-style decoders (Llama, Mistral, Qwen2, Gemma...).")
    return found


def mask_intermediate(hidden: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``hidden * Bernoulli(1 - rate)`` element-wise (no rescale)."""
    if rate <= 0.0:
        return hidden
    keep = torch.rand(hidden.shape, generator=generator, device=hidden.device) >= rate
    return hidden * keep.to(hidden.dtype)


@contextmanager
def trans_peft_hooks(model, mask_rate: float = 0.0, drop_rate: float = 0.1, seed: int = 0) -> Iterator[int]:
    """Install the masking / dropping hooks on every FFN of ``model`` for the ``with`` block; yields the FFN count."""
    _check_rate("mask_rate", mask_rate)
    _check_rate("drop_rate", drop_rate)
    handles = _install(model, mask_rate, drop_rate, seed)
    try:
        yield len(handles) // 2
    finally:
        for h in handles:
            h.remove()


def _install(model, mask_rate: float, drop_rate: float, seed: int) -> list:
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    handles = []
    for mlp in ffn_modules(model):
        def pre_down(module, args, _rate=mask_rate):
            if not module.training or _rate <= 0.0:
                return None
            return (mask_intermediate(args[0], _rate, generator),) + tuple(args[1:])

        def after_mlp(module, args, output, _rate=drop_rate):
            if module.training and _rate > 0.0 and rng.random() < _rate:
                return torch.zeros_like(output)
            return None

        handles.append(mlp.down_proj.register_forward_pre_hook(pre_down))
        handles.append(mlp.register_forward_hook(after_mlp))
    return handles


class TransPeftCallback(TrainerCallback):
    """Trainer callback that trains with Trans-PEFT FFN knowledge masking / dropping.

    >>> Trainer(model=peft_model, args=args, train_dataset=data, callbacks=[TransPeftCallback(drop_rate=0.1)])
    """

    def __init__(self, mask_rate: float = 0.0, drop_rate: float = 0.1, seed: int = 0):
        _check_rate("mask_rate", mask_rate)
        _check_rate("drop_rate", drop_rate)
        self.mask_rate, self.drop_rate, self.seed = mask_rate, drop_rate, seed
        self._handles: list = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            raise TransferError("TransPeftCallback needs the Trainer's model.")
        if getattr(args, "gradient_checkpointing", False):
            raise TransferError("Trans-PEFT masking/dropping draws fresh random masks on every forward, so a "
                                "gradient-checkpointing recompute would see different ones; turn "
                                "gradient_checkpointing off for this run.")
        self._remove()
        self._handles = _install(model, self.mask_rate, self.drop_rate, self.seed + args.seed)

    def on_train_end(self, args, state, control, **kwargs):
        self._remove()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
