"""Between adapters and models: fold a delta into a model's weights, read deltas out, build an adapter from them.

These are the small pieces other hfcl packages (transfer, space, unlearn) build on:

* :func:`merge_into_model` ``W += weight * dW`` for every module of a LoRA adapter (like PEFT ``merge_and_unload``
  but for any :class:`~hfcl.compose.deltas.LoraAdapter`, including composed ones that were never a PeftModel);
* :func:`delta_weights` the dense ``{module: dW}`` of an adapter, in the ``(out, in)`` layout of ``nn.Linear.weight``;
* :func:`adapter_from_dense` the best rank-``rank`` LoRA of dense per-module deltas (truncated SVD per module, error
  reported), for code that computes new deltas directly (for example moving an adapter to a new base model).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch

from .compress import truncated_svd
from .deltas import LoraAdapter
from .guards import IncompatibleAdaptersError, check_against_base


def merge_into_model(model: Any, adapter: LoraAdapter, weight: float = 1.0, in_place: bool = True) -> Any:
    """``W += weight * dW`` for every module of ``adapter`` (``fan_in_fan_out`` honoured); returns the model.

    Module names and shapes are checked against ``model`` before any weight changes. ``in_place=False`` works on a
    deep copy. Accepts a ``PeftModel`` too (its base model's weights are changed).
    """
    if getattr(adapter, "kind", None) != "lora":
        kind = getattr(adapter, "kind", type(adapter).__name__)
        raise IncompatibleAdaptersError(f"merge_into_model takes a LoRA adapter, got {kind!r}.")
    target = model if in_place else copy.deepcopy(model)
    inner = target.get_base_model() if hasattr(target, "get_base_model") else target
    check_against_base(adapter, inner)
    modules = dict(inner.named_modules())
    with torch.no_grad():
        for name, delta in adapter.deltas.items():
            if delta.rank == 0 or weight == 0:
                continue
            w = modules[name].weight
            dense = delta.dense(torch.float32) * float(weight)
            w.add_((dense.T if adapter.fan_in_fan_out else dense).to(device=w.device, dtype=w.dtype))
    return target


def delta_weights(adapter: LoraAdapter, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Dense ``{module: dW}`` (shape ``(out, in)``); costs out*in memory per module."""
    return {name: delta.dense(dtype) for name, delta in adapter.deltas.items()}


def adapter_from_dense(deltas: Mapping[str, torch.Tensor], rank: int | None = None, rtol: float | None = None,
                       name: str = "adapter", like: LoraAdapter | None = None,
                       **metadata: Any) -> tuple[LoraAdapter, dict[str, float]]:
    """Best rank-``rank`` LoRA of ``{module: dW}`` (``rank=None``: numerical rank, lossless) and per-module errors.

    ``like`` copies base model, layout and task type from another adapter; ``metadata`` sets
    :class:`LoraAdapter` fields (``base_model_name_or_path=...``) directly.
    """
    out: dict[str, Any] = {}
    errors: dict[str, float] = {}
    for module, dense in deltas.items():
        if dense.dim() != 2:
            raise IncompatibleAdaptersError(f"Delta of {module!r} must be 2-D (out, in), got {tuple(dense.shape)}.")
        packed = truncated_svd(dense, rank=rank, rtol=rtol)
        out[module], errors[module] = packed.delta, packed.rel_error
    fields: dict[str, Any] = {}
    if like is not None:
        fields = dict(base_model_name_or_path=like.base_model_name_or_path, base_revision=like.base_revision,
                      fan_in_fan_out=like.fan_in_fan_out, task_type=like.task_type)
    fields.update(metadata)
    return LoraAdapter(deltas=out, name=name, **fields), errors
