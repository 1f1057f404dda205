"""Move a PEFT adapter to a new or updated base model.

Three tiers (see ``hfcl transfer --help``):

* ``copy``: load the adapter's weights onto the target base after a compatibility check
  (:func:`hfcl.transfer.compat.check_compatibility`, :func:`hfcl.transfer.api.transfer`);
* Trans-PEFT training: FFN knowledge masking / dropping while the original adapter is trained, so it survives base
  updates (:class:`hfcl.transfer.trans_peft.TransPeftCallback`);
* ``distill`` (Trans-LoRA, data-free): synthetic prompts from the source model, filtered by a real-vs-synthetic
  discriminator, then knowledge distillation into a new LoRA on the target
  (:func:`hfcl.transfer.distill.distill_transfer`, :class:`hfcl.transfer.distill.TransferTrainer`).

Submodules are imported lazily so ``import hfcl.transfer`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TransferError": "errors", "IncompatibleBaseError": "errors",
    "check_compatibility": "compat", "CompatibilityReport": "compat",
    "evaluate_transfer": "api", "save_task_adapter": "task",
    "TransPeftCallback": "trans_peft", "trans_peft_hooks": "trans_peft",
    "TransferConfig": "distill", "TransferTrainer": "distill", "distill_transfer": "distill",
    "kd_loss": "distill",
    "generate_synthetic_prompts": "synthetic", "Discriminator": "synthetic",
    "sentence_task": "task", "task_score": "task", "train_task_adapter": "task", "gain_retained": "task",
    "transfer": "api", "demo_transfer": "demo",
}

__all__ = [
    "CompatibilityReport",
    "Discriminator",
    "IncompatibleBaseError",
    "TransPeftCallback",
    "TransferConfig",
    "TransferError",
    "TransferTrainer",
    "check_compatibility",
    "demo_transfer",
    "distill_transfer",
    "evaluate_transfer",
    "gain_retained",
    "generate_synthetic_prompts",
    "kd_loss",
    "save_task_adapter",
    "sentence_task",
    "task_score",
    "train_task_adapter",
    "trans_peft_hooks",
    "transfer",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'hfcl.transfer' has no attribute {name!r}")
