"""(IA)^3 composition on the offset from identity.

An (IA)^3 module rescales activations by a learned vector ``l`` (identity at ``l = 1``), so its "delta" is
``l - 1``. hfcl combines ``sum_i w_i a_i`` as

    l = 1 + sum_i w_i (l_i - 1)

which gives Zhang et al. (2023)'s operators: negation ``-a`` is ``l -> 2 - l`` and a convex combination
(``sum w = 1``) is ``sum w_i l_i``, the same as PEFT's ``IA3Model.add_weighted_adapter``. PEFT cannot express
negation (weight -1 gives ``-l``, which flips the sign of every activation). Because (IA)^3 acts multiplicatively, the
composed model's output is not exactly the sum of the sources' output changes (unlike LoRA); only the vectors add.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .algebra import Composable, check_module_policy


@dataclass
class IA3Adapter(Composable):
    """An (IA)^3 adapter: ``{module_name: l}`` (shape ``(out, 1)``, or ``(1, in)`` for feed-forward modules)."""

    vectors: dict[str, torch.Tensor]
    feedforward: set[str] = field(default_factory=set)
    name: str = "adapter"
    source: str | None = None
    revision: str | None = None
    base_model_name_or_path: str | None = None
    base_revision: str | None = None
    fan_in_fan_out: bool = False
    task_type: str | None = None
    peft_config: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    kind = "ia3"

    @property
    def modules(self) -> list[str]:
        return sorted(self.vectors)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "revision": self.revision,
                "base_model_name_or_path": self.base_model_name_or_path, "base_revision": self.base_revision,
                "kind": self.kind, "modules": len(self.vectors)}

    @classmethod
    def combine(cls, combination: Any, modules: str = "union", name: str = "composed") -> IA3Adapter:
        return combine_ia3(combination, modules=modules, name=name)


def combine_ia3(combination: Any, modules: str = "union", name: str = "composed") -> IA3Adapter:
    """``l = 1 + sum_i w_i (l_i - 1)`` per module (a module an adapter lacks has ``l_i = 1``)."""
    terms = combination.terms
    adapters = [a for a, _ in terms]
    names = check_module_policy(adapters, modules)
    vectors: dict[str, torch.Tensor] = {}
    feedforward: set[str] = set()
    for module in names:
        parts = [(w, a.vectors[module]) for a, w in terms if module in a.vectors]
        base = parts[0][1]
        offset = torch.zeros_like(base, dtype=torch.float64)
        for weight, vec in parts:
            offset += weight * (vec.double() - 1.0)
        vectors[module] = (1.0 + offset).to(base.dtype)
        if any(module in a.feedforward for a in adapters):
            feedforward.add(module)
    first = adapters[0]
    return IA3Adapter(vectors=vectors, feedforward=feedforward, name=name,
                      base_model_name_or_path=first.base_model_name_or_path, base_revision=first.base_revision,
                      fan_in_fan_out=first.fan_in_fan_out, task_type=first.task_type,
                      provenance={"sources": [a.describe() for a in adapters],
                                  "weights": {a.name: w for a, w in terms}})


def negate_ia3(adapter: IA3Adapter) -> IA3Adapter:
    """Zhang et al.'s (IA)^3 negation ``l -> 2 - l``."""
    return combine_ia3((-adapter), name=f"neg_{adapter.name}")
