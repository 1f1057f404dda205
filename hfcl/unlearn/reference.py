"""The reference model (the model before unlearning) in its cheapest correct form.

* ``cached``: sequence log-probs of every forget (and refusal) example, computed once in batched no-grad passes
  before training. NPO and IdkDPO need nothing else from the reference, so each step costs what the reference-free
  step costs.
* ``adapter_disabled``: a PEFT model with its adapter switched off *is* the pre-unlearning model when the adapter is
  new (LoRA B = 0): no second copy in memory.
* ``model``: a frozen copy (or the ``ref_model`` given), for full fine-tuning with KL/UNDIAL/RMU.
"""

from __future__ import annotations

import copy
from typing import Callable

import torch

from ..errors import ConfigError
from ..utils.logging import get_logger
from . import losses as L
from .methods import REF_LOGPS, forward_with_hidden

logger = get_logger(__name__)


def is_peft_model(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def choose_reference(requested: str, needs: frozenset, model, ref_model=None) -> str:
    """Resolve ``auto`` and check that the requested mode can serve ``needs``."""
    if not needs:
        return "none"
    if requested == "auto":
        if needs <= {REF_LOGPS}:
            return "cached"
        if ref_model is None and is_peft_model(model):
            return "adapter_disabled"
        return "model"
    if requested == "adapter_disabled" and not is_peft_model(model):
        raise ConfigError("reference='adapter_disabled' needs a PEFT model (pass peft_config or a PeftModel); for "
                          "full fine-tuning use 'cached' (NPO/IdkDPO) or 'model'.")
    return requested


def adapter_is_fresh(model) -> bool:
    """True when every LoRA B matrix is zero, i.e. the adapter does not change the base model yet."""
    b_weights = [p for n, p in model.named_parameters() if "lora_B" in n]
    return all(bool((p == 0).all()) for p in b_weights)


class Reference:
    """Reference outputs for a micro-batch, in one of the modes above."""

    def __init__(self, mode: str, unwrap: Callable = lambda m: m, ref_model=None):
        self.mode, self.unwrap, self.ref_model = mode, unwrap, ref_model
        self.cache: dict[str, torch.Tensor] = {}

    @classmethod
    def build(cls, mode: str, model, unwrap: Callable = lambda m: m, ref_model=None) -> "Reference":
        if mode == "model" and ref_model is None:
            ref_model = copy.deepcopy(model)
        if ref_model is not None:
            ref_model.eval()
            for p in ref_model.parameters():
                p.requires_grad_(False)
        if mode == "adapter_disabled" and not adapter_is_fresh(model):
            logger.warning("reference='adapter_disabled' uses the base model without the adapter, but the adapter "
                           "already changes the model (LoRA B != 0); use reference='cached' or 'model' if the "
                           "pre-unlearning model is base+adapter.")
        return cls(mode, unwrap, ref_model if mode in ("model", "cached") else None)

    @torch.no_grad()
    def forward(self, model, batch: dict[str, torch.Tensor], layer: int | None):
        """``(logits, hidden at layer)`` of the reference on ``batch`` (no gradient)."""
        if self.mode == "adapter_disabled":
            base = self.unwrap(model)
            with base.disable_adapter():
                return forward_with_hidden(base, batch, layer)
        if self.mode == "model":
            device = next(self.ref_model.parameters()).device
            batch = {k: v.to(device) for k, v in batch.items()}
            return forward_with_hidden(self.ref_model, batch, layer)
        raise ConfigError(f"reference={self.mode!r} cannot provide logits or hidden states.")

    def logps(self, model, part: str, batch: dict[str, torch.Tensor], index: torch.Tensor) -> torch.Tensor:
        """Reference sequence log-probs of ``part`` for the examples ``index`` of the forget set."""
        if self.mode == "cached":
            return self.cache[part].to(index.device)[index]
        logits, _ = self.forward(model, batch, None)
        return L.sequence_logps(logits, batch["labels"].to(logits.device))[0].to(batch["labels"].device)

    @torch.no_grad()
    def fill_cache(self, model, parts: dict[str, list[dict]], collate: Callable, batch_size: int,
                   device: torch.device) -> None:
        """Compute ``cache[part][i] = log π_ref(y_i|x_i)`` for every tokenized example of every part."""
        source = self.ref_model.to(device) if self.ref_model is not None else model
        was_training = source.training
        source.eval()
        try:
            for part, rows in parts.items():
                values = []
                for start in range(0, len(rows), batch_size):
                    batch = {k: v.to(device) for k, v in collate(rows[start:start + batch_size]).items()}
                    logits, _ = forward_with_hidden(source, batch, None)
                    values.append(L.sequence_logps(logits, batch["labels"])[0].float().cpu())
                self.cache[part] = torch.cat(values)
        finally:
            source.train(was_training)
        self.ref_model = None  # the cache is all we need: free the copy


__all__ = ["Reference", "choose_reference", "is_peft_model", "adapter_is_fresh"]
