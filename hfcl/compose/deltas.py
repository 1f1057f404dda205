"""Adapters as sets of per-module weight deltas.

Convention (the one every hfcl composition uses): an adapter *is* its weight change. For a LoRA module PEFT computes
``h = W0 x + s * B A x`` with ``A: (r, in)``, ``B: (out, r)`` and ``s = lora_alpha / r`` (``lora_alpha / sqrt(r)``
with rsLoRA; per-module ``rank_pattern`` / ``alpha_pattern`` override both), so the module's delta is

    dW = s * B @ A        shaped (out_features, in_features), like ``nn.Linear.weight``.

GPT-2 ``Conv1D`` layers store their weight transposed (``fan_in_fan_out=True``); PEFT still stores ``A`` and ``B``
in the Linear layout and transposes the delta when merging, so a :class:`LowRankDelta` is always in the
``(out, in)`` layout and the flag travels with the adapter (:attr:`LoraAdapter.fan_in_fan_out`).

Every operation is defined on dW, never on the factors (PEFT's ``add_weighted_adapter(combination_type="linear")``
mixes factors and creates cross terms ``B_i A_j``). Exact linear combinations stack factors:

    sum_i w_i s_i B_i A_i = [B_1 | B_2 | ...] @ [w_1 s_1 A_1 ; w_2 s_2 A_2 ; ...]

which is PEFT's ``cat`` construction and has rank ``sum r_i``; :mod:`hfcl.compose.compress` re-factors it to a
smaller rank optimally without forming dW.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from ..errors import ConfigError
from .algebra import Combination, Composable, check_module_policy, union_modules

__all__ = ["Composable", "LoraAdapter", "LowRankDelta", "lora_linear_combination", "stack_deltas", "union_modules"]


@dataclass(frozen=True)
class LowRankDelta:
    """One module's weight change ``dW = scaling * B @ A`` (``A: (r, in)``, ``B: (out, r)``; ``r`` may be 0)."""

    A: torch.Tensor
    B: torch.Tensor
    scaling: float = 1.0

    def __post_init__(self) -> None:
        if self.A.dim() != 2 or self.B.dim() != 2:
            raise ConfigError(f"LoRA factors must be 2-D (A: (r, in), B: (out, r)); got A {tuple(self.A.shape)}, "
                              f"B {tuple(self.B.shape)}. Conv and embedding LoRA are not supported.")
        if self.A.shape[0] != self.B.shape[1]:
            raise ConfigError(f"LoRA rank mismatch: A has {self.A.shape[0]} rows, B has {self.B.shape[1]} columns.")

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of dW: ``(out_features, in_features)``."""
        return int(self.B.shape[0]), int(self.A.shape[1])

    def dense(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The dense ``(out, in)`` delta. Costs out*in memory: use for small modules, tests and element-wise merges."""
        dtype = dtype or self.A.dtype
        return (self.B.to(dtype) @ self.A.to(dtype)) * self.scaling

    def scaled(self, weight: float) -> LowRankDelta:
        """``weight * dW`` (exact: only the scalar changes)."""
        return replace(self, scaling=self.scaling * float(weight))

    def folded(self) -> LowRankDelta:
        """The same delta with the scaling folded into ``A`` (scaling 1), as PEFT stores a merged adapter."""
        return LowRankDelta(self.A * self.scaling, self.B, 1.0)

    def sq_norm(self) -> float:
        """``||dW||_F^2 = s^2 trace((B^T B)(A A^T))`` in float64, without forming dW."""
        a, b = self.A.double(), self.B.double()
        return float((self.scaling ** 2) * ((b.T @ b) * (a @ a.T)).sum())

    @staticmethod
    def zero(out_features: int, in_features: int, dtype: torch.dtype = torch.float32) -> LowRankDelta:
        """The rank-0 zero delta."""
        return LowRankDelta(torch.zeros(0, in_features, dtype=dtype), torch.zeros(out_features, 0, dtype=dtype))


def stack_deltas(terms: Sequence[tuple[float, LowRankDelta]]) -> LowRankDelta:
    """Exact ``sum_i w_i dW_i`` as one LowRankDelta of rank ``sum r_i`` (weights and scalings folded into A).

    Terms with weight 0 are dropped, so ``a - a`` simplified upstream gives the rank-0 zero delta.
    """
    if not terms:
        raise ConfigError("stack_deltas needs at least one (weight, delta) term.")
    shapes = {d.shape for _, d in terms}
    if len(shapes) != 1:
        raise ConfigError(f"Cannot add deltas of different shapes {sorted(shapes)} for one module.")
    out_f, in_f = shapes.pop()
    dtype = functools.reduce(torch.promote_types, [t.dtype for _, d in terms for t in (d.A, d.B)])
    live = [(float(w), d) for w, d in terms if float(w) != 0.0 and d.rank > 0]
    if not live:
        return LowRankDelta.zero(out_f, in_f, dtype)
    a = torch.cat([d.A.to(dtype) * (w * d.scaling) for w, d in live], dim=0)
    b = torch.cat([d.B.to(dtype) for _, d in live], dim=1)
    return LowRankDelta(a, b, 1.0)


@dataclass
class LoraAdapter(Composable):
    """A LoRA adapter as ``{module_name: LowRankDelta}`` plus where it came from.

    Module names are the names in ``base_model.named_modules()`` (for example
    ``model.layers.0.self_attn.q_proj``), i.e. PEFT's state-dict keys without ``base_model.model.`` and
    ``.lora_A.weight``. Arithmetic operators build an exact :class:`~hfcl.compose.algebra.Combination`:
    ``0.7 * math + 0.3 * code - 0.5 * toxic``.
    """

    deltas: dict[str, LowRankDelta]
    name: str = "adapter"
    source: str | None = None
    revision: str | None = None
    base_model_name_or_path: str | None = None
    base_revision: str | None = None
    fan_in_fan_out: bool = False
    task_type: str | None = None
    peft_config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    kind = "lora"

    @property
    def modules(self) -> list[str]:
        return sorted(self.deltas)

    @property
    def ranks(self) -> dict[str, int]:
        return {k: d.rank for k, d in self.deltas.items()}

    @property
    def max_rank(self) -> int:
        return max((d.rank for d in self.deltas.values()), default=0)

    def dense(self, module: str, dtype: torch.dtype | None = None) -> torch.Tensor:
        return self.deltas[module].dense(dtype)

    def sq_norm(self) -> float:
        return sum(d.sq_norm() for d in self.deltas.values())

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the adapter for recipes and cards."""
        return {"name": self.name, "source": self.source, "revision": self.revision,
                "base_model_name_or_path": self.base_model_name_or_path, "base_revision": self.base_revision,
                "kind": self.kind, "modules": len(self.deltas), "max_rank": self.max_rank,
                "use_rslora": bool(self.peft_config.get("use_rslora", False))}

    @classmethod
    def combine(cls, combination: Combination, modules: str = "union", name: str = "composed") -> LoraAdapter:
        """The exact weighted sum of ``combination``'s LoRA adapters (see :func:`lora_linear_combination`)."""
        return lora_linear_combination(combination.terms, modules=modules, name=name)


def lora_linear_combination(terms: Sequence[tuple[LoraAdapter, float]], modules: str = "union",
                            name: str = "composed") -> LoraAdapter:
    """Exact ``sum_i w_i a_i`` of LoRA adapters as one adapter (rank ``sum r_i`` per module)."""
    if not terms:
        raise ConfigError("Nothing to combine: the expression names no adapter.")
    adapters = [a for a, _ in terms]
    names = check_module_policy(adapters, modules)
    deltas: dict[str, LowRankDelta] = {}
    for module in names:
        parts = [(w, a.deltas[module]) for a, w in terms if module in a.deltas]
        deltas[module] = stack_deltas(parts)
    first = adapters[0]
    return LoraAdapter(deltas=deltas, name=name, base_model_name_or_path=first.base_model_name_or_path,
                       base_revision=first.base_revision, fan_in_fan_out=first.fan_in_fan_out,
                       task_type=first.task_type,
                       provenance={"sources": [a.describe() for a in adapters],
                                   "weights": {a.name: w for a, w in terms}})
