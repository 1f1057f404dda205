"""Checks that run before any composition work; each failure is one clear, typed error.

What PEFT 0.21.2's ``add_weighted_adapter`` gets silently wrong, and what hfcl does instead:

* rsLoRA sources: PEFT reuses ``use_rslora`` of the first source with ``lora_alpha = r``, so the merged adapter is
  scaled by ``sqrt(r)`` too much (x2 for r=4). hfcl computes each module's scaling from its own rank and alpha
  (``alpha / sqrt(r)`` with rsLoRA, ``rank_pattern`` / ``alpha_pattern`` honoured), folds it into the factors and
  writes plain LoRA (``use_rslora=False``, scaling 1).
* DoRA, ``lora_bias``, ``bias != "none"``, aLoRA, KaSA, MonteCLoRA, VeLoRA, BD-LoRA, QALoRA, Arrow,
  ``target_parameters``, ``modules_to_save``, trainable tokens, layer replication, Megatron, embedding and
  convolution LoRA: refused (their effect is not a sum of ``s * B @ A`` per Linear module).
* Initialisations that mutate the base weights (PiSSA, OLoRA, CorDA, LoftQ, LoRA-GA) are refused unless the
  adapter was saved with ``path_initial_model_for_weight_conversion`` (then PEFT stores a plain LoRA).
* Different base models (``base_model_name_or_path`` and ``revision`` differ): error unless ``force=True``; PEFT never
  checks. Different shapes of one module are always an error.
* GPT-2 ``Conv1D`` (``fan_in_fan_out=True``): deltas stay in the ``(out, in)`` layout and the flag is carried to the
  output; mixing ``fan_in_fan_out`` values is an error.
* An existing output directory is refused unless ``overwrite=True`` (PEFT silently keeps an existing adapter name).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import (  # the error classes live in hfcl.errors; re-exported here for compatibility
    IncompatibleAdaptersError,
    OutputExistsError,
    UnsupportedAdapterError,
)
from ..utils.logging import get_logger

logger = get_logger(__name__)

SUPPORTED_PEFT_TYPES = ("LORA", "IA3")
MUTATING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")
# config key -> what it is; refused when set to anything truthy.
UNSUPPORTED_LORA_OPTIONS = {
    "use_dora": "DoRA (the magnitude vector rescales W0 + dW, so deltas do not add)",
    "lora_bias": "lora_bias (a trained bias on lora_B)",
    "modules_to_save": "modules_to_save (full trained copies of modules)",
    "trainable_token_indices": "trainable token embeddings",
    "target_parameters": "target_parameters (LoRA on nn.Parameter)",
    "layer_replication": "layer_replication",
    "megatron_config": "Megatron parallel layers",
    "alora_invocation_tokens": "aLoRA (activated only after invocation tokens)",
    "use_qalora": "QALoRA",
    "kasa_config": "KaSA",
    "monteclora_config": "MonteCLoRA",
    "velora_config": "VeLoRA",
    "use_bdlora": "BD-LoRA",
    "arrow_config": "Arrow routing",
}


__all__ = [
    "MUTATING_INITS",
    "SUPPORTED_PEFT_TYPES",
    "UNSUPPORTED_LORA_OPTIONS",
    "IncompatibleAdaptersError",
    "UnsupportedAdapterError",
]


def check_supported_config(config: dict[str, Any], source: str) -> str:
    """Return the adapter kind (``"lora"`` or ``"ia3"``) or raise :class:`UnsupportedAdapterError`."""
    peft_type = str(config.get("peft_type", "")).upper()
    if peft_type not in SUPPORTED_PEFT_TYPES:
        raise UnsupportedAdapterError(f"Adapter {source!r} has peft_type={peft_type or None!r}; hfcl composes "
                                      f"{' and '.join(SUPPORTED_PEFT_TYPES)} adapters. Convert other types with "
                                      "peft.convert_to_lora first.")
    if peft_type == "IA3":
        if config.get("modules_to_save"):
            raise UnsupportedAdapterError(f"Adapter {source!r} has modules_to_save; hfcl cannot compose them.")
        return "ia3"
    for key, what in UNSUPPORTED_LORA_OPTIONS.items():
        if config.get(key):
            raise UnsupportedAdapterError(f"Adapter {source!r} uses {what} ({key}={config[key]!r}); its effect is "
                                          "not a weight delta s*B@A, so hfcl refuses to compose it.")
    if config.get("bias", "none") != "none":
        raise UnsupportedAdapterError(f"Adapter {source!r} trains biases (bias={config['bias']!r}); only "
                                      "bias='none' adapters are weight deltas.")
    init = str(config.get("init_lora_weights", True)).lower()
    if any(init.startswith(name) for name in MUTATING_INITS):
        raise UnsupportedAdapterError(
            f"Adapter {source!r} was initialised with init_lora_weights={config['init_lora_weights']!r}, which "
            "changes the base weights. Save it with save_pretrained(..., path_initial_model_for_weight_conversion=...) "
            "to get a plain LoRA against the original base, then compose that.")
    return "lora"


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    from peft.utils.other import get_pattern_key

    if not patterns:
        return default
    return patterns.get(get_pattern_key(list(patterns), module), default)


def lora_scaling(config: dict[str, Any], module: str, rank: int) -> float:
    """PEFT's scaling of one module: ``alpha / r`` or, with rsLoRA, ``alpha / sqrt(r)`` (patterns honoured)."""
    alpha = float(_pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8)))
    expected = int(_pattern_value(config.get("rank_pattern") or {}, module, config.get("r", rank)))
    if expected != rank:
        raise IncompatibleAdaptersError(f"Module {module!r} has LoRA rank {rank} in the weights but {expected} in "
                                        "adapter_config.json (r / rank_pattern); the adapter files are inconsistent.")
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def normalize_base(name: str | None) -> str | None:
    """A base model name comparable across adapters: a local folder's real path, else the name without a final /."""
    if not name:
        return None
    return os.path.realpath(name) if os.path.isdir(name) else str(name).rstrip("/")


_norm_base = normalize_base  # the old private name


def check_same_base(adapters: Sequence[Any], force: bool = False) -> None:
    """All adapters were trained on the same base (name/path and revision); ``force`` downgrades to a warning."""
    bases = {(normalize_base(a.base_model_name_or_path), a.base_revision) for a in adapters}
    known = {b for b in bases if b[0] is not None}
    if len(known) <= 1:
        return
    listing = "; ".join(f"{a.name}: {a.base_model_name_or_path}@{a.base_revision or 'main'}" for a in adapters)
    if not force:
        raise IncompatibleAdaptersError(f"Adapters were trained on different base models ({listing}). Their deltas "
                                        "live in different weight spaces; pass force=True (CLI: --force) only if "
                                        "the bases are the same model under different names.")
    logger.warning("Composing adapters from different base models because force=True: %s", listing)


def check_shapes(adapters: Sequence[Any]) -> None:
    """Each module has the same delta shape in every adapter that targets it, and one ``fan_in_fan_out`` layout."""
    layouts = {bool(getattr(a, "fan_in_fan_out", False)) for a in adapters}
    if len(layouts) > 1:
        raise IncompatibleAdaptersError("Adapters disagree on fan_in_fan_out (Conv1D vs Linear layout): "
                                        + ", ".join(f"{a.name}={a.fan_in_fan_out}" for a in adapters))
    seen: dict[str, tuple[tuple[int, ...], str]] = {}
    for adapter in adapters:
        table = getattr(adapter, "deltas", None) or getattr(adapter, "vectors", {})
        for module, item in table.items():
            shape = tuple(item.shape)
            if module in seen and seen[module][0] != shape:
                raise IncompatibleAdaptersError(
                    f"Module {module!r} has delta shape {seen[module][0]} in adapter {seen[module][1]!r} but {shape} "
                    f"in {adapter.name!r}: the adapters belong to different architectures.")
            seen.setdefault(module, (shape, adapter.name))


def check_against_base(adapter: Any, base_model: Any) -> None:
    """Every module of ``adapter`` exists in ``base_model`` as a Linear (or GPT-2 Conv1D) of the delta's shape."""
    import torch
    from transformers.pytorch_utils import Conv1D

    modules = dict(base_model.named_modules())
    for name, delta in getattr(adapter, "deltas", {}).items():
        module = modules.get(name)
        if module is None:
            raise IncompatibleAdaptersError(f"Adapter {adapter.name!r} targets {name!r}, which the base model "
                                            f"{type(base_model).__name__} does not have.")
        if isinstance(module, Conv1D):
            shape, want_fif = (module.weight.shape[1], module.weight.shape[0]), True
        elif isinstance(module, torch.nn.Linear):
            shape, want_fif = tuple(module.weight.shape), False
        else:
            raise UnsupportedAdapterError(f"Module {name!r} is a {type(module).__name__}; hfcl composes LoRA on "
                                          "Linear and Conv1D layers only.")
        if tuple(shape) != tuple(delta.shape):
            raise IncompatibleAdaptersError(f"Adapter {adapter.name!r} has a {tuple(delta.shape)} delta for {name!r} "
                                            f"but the base layer is {tuple(shape)} (out, in).")
        if want_fif != bool(adapter.fan_in_fan_out):
            raise IncompatibleAdaptersError(f"Module {name!r} is {'a Conv1D' if want_fif else 'an nn.Linear'} but "
                                            f"adapter {adapter.name!r} has fan_in_fan_out={adapter.fan_in_fan_out}.")


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an existing output directory unless ``overwrite``."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists; pass overwrite=True "
                                "(CLI: --overwrite) or choose another --output_dir.")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path {str(out)!r} exists and is not a directory.")
    return out
