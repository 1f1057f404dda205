"""Checks of a LoRA config against the model it will wrap, before PEFT allocates anything.

PEFT itself reports a missing target module only after building the others, and accepts any rank: a rank of 100000
on a 4096-wide layer allocates gigabytes for an update whose rank cannot exceed 4096. Both are a
:class:`~hfcl.errors.ConfigError` here, naming the field and the modules that exist.
"""

from __future__ import annotations

import re

import torch

from ..errors import ConfigError
from ..utils.logging import get_logger

logger = get_logger(__name__)


def _dims(module: torch.nn.Module) -> tuple[int, int] | None:
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if isinstance(module, torch.nn.Embedding):
        return module.num_embeddings, module.embedding_dim
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None and weight.dim() == 2:
        return tuple(weight.shape)
    return None


def lora_targets(model, targets) -> dict[str, tuple[int, int]]:
    """``{module name: (in, out)}`` of the modules a LoRA ``target_modules`` value selects (PEFT's matching rule:
    a list matches a name or a dotted suffix, a string is a full-match regex, ``all-linear`` every linear layer but
    the output head)."""
    modules = {name: _dims(m) for name, m in model.named_modules() if name and _dims(m) is not None}
    if targets == "all-linear":
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        heads = {name for name, m in model.named_modules() if m is head}
        return {n: d for n, d in modules.items()
                if isinstance(model.get_submodule(n), torch.nn.Linear) and n not in heads}
    if isinstance(targets, str):
        return {n: d for n, d in modules.items() if re.fullmatch(targets, n)}
    wanted = list(targets)
    return {n: d for n, d in modules.items() if any(n == t or n.endswith(f".{t}") for t in wanted)}


def check_lora_config(model, peft_config) -> None:
    """Raise :class:`ConfigError` when a target module does not exist or the rank exceeds every target's size."""
    targets = getattr(peft_config, "target_modules", None)
    rank = getattr(peft_config, "r", None)
    if targets is None or rank is None:
        return  # not a LoRA-style config, or PEFT's per-architecture default targets
    if int(rank) < 1:
        raise ConfigError(f"lora_r={rank} must be >= 1.")
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
    if not isinstance(targets, str):
        missing = [t for t in targets if not lora_targets(model, [t])]
        if missing:
            raise ConfigError(f"lora_target_modules: {', '.join(map(repr, missing))} name no module of this model; "
                              f"its linear layers are {', '.join(leaves)} (or use 'all-linear').")
    found = lora_targets(model, targets)
    if not found:
        raise ConfigError(f"lora_target_modules={targets!r} matches no module of this model; its linear layers are "
                          f"{', '.join(leaves)}.")
    largest = max(min(d) for d in found.values())
    if rank > largest:
        raise ConfigError(f"lora_r={rank} exceeds the size of every targeted module (the largest allows rank "
                          f"{largest}: an update of a d_in x d_out layer has rank <= min(d_in, d_out)); choose "
                          f"lora_r <= {largest}, typically 8-64.")
    smallest = min(min(d) for d in found.values())
    if rank > smallest:
        logger.warning("lora_r=%d exceeds min(d_in, d_out)=%d of some targeted modules; their updates cannot use "
                       "the full rank.", rank, smallest)


__all__ = ["check_lora_config", "lora_targets"]
