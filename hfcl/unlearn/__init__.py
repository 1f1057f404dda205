"""Machine unlearning on top of ``transformers.Trainer``.

>>> from hfcl.unlearn import UnlearningConfig, UnlearningTrainer
>>> args = UnlearningConfig(output_dir="out", method="NPO", retain_loss="nll")          # doctest: +SKIP
>>> UnlearningTrainer("target", args, forget_dataset=forget, retain_dataset=retain,
...                   peft_config=LoraConfig(r=8, task_type="CAUSAL_LM")).train()       # doctest: +SKIP

Names are imported on first use so ``import hfcl`` stays fast.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "UnlearningConfig": "config",
    "UnlearningTrainer": "trainer",
    "METHODS": "methods",
    "get_method": "methods",
    "losses": None,
    "SophiaG": "optim",
    "saliency_masks": "optim",
    "unlearn": "run",
    "demo_unlearn": "run",
    "S3TEnsemble": "s3t",
    "S3TSettings": "s3t",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hfcl.unlearn' has no attribute {name!r}")
    module = _EXPORTS[name]
    if module is None:
        return importlib.import_module(f"{__name__}.{name}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
