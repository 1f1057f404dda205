"""Full-model task vectors (``theta_ft - theta_base``) and LoRA extraction from a full fine-tune.

A :class:`TaskVector` holds one dense delta per floating-point parameter and supports the same algebra as adapters
(``0.5 * tv_a - tv_b`` is a :class:`~hfcl.compose.algebra.Combination`) and the same merges (:func:`merge_task_vectors`
uses :data:`~hfcl.compose.merges.MERGE_METHODS` per parameter). :func:`apply_task_vector` gives
``theta_base + lam * tau`` (Ilharco et al. 2023).

:func:`extract_lora` turns a full fine-tune into a PEFT LoRA: per Linear (or GPT-2 Conv1D) module the delta
``W_ft - W_base`` is cut to its best rank-``rank`` approximation by truncated SVD, with the singular values split
evenly between ``B`` and ``A`` (mergekit ``extract-lora --distribute-scale``; PEFT ``convert_to_lora`` does the same
for adapters). Parameters that are not Linear weights (norms, embeddings, and ``lm_head`` by default because it is
often tied to the embeddings) cannot be a LoRA; they are reported with the share of the total delta norm they carry,
so you can see what the adapter leaves out.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .algebra import Combination
from .compress import truncated_svd
from .deltas import Composable, LoraAdapter
from .guards import IncompatibleAdaptersError
from .merges import MERGE_METHODS, check_merge_options, module_generator


@dataclass
class TaskVector(Composable):
    """``{parameter name: theta_ft - theta_base}`` for every floating-point parameter."""

    deltas: dict[str, torch.Tensor]
    name: str = "task_vector"
    source: str | None = None
    base_model_name_or_path: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    kind = "full"
    fan_in_fan_out = False
    base_revision = None

    @classmethod
    def from_models(cls, base: Any, finetuned: Any, name: str = "task_vector",
                    source: str | None = None) -> TaskVector:
        """``theta_ft - theta_base`` over the parameters both models have (shapes must match)."""
        base_params = dict(base.named_parameters())
        deltas = {}
        for pname, param in finetuned.named_parameters():
            if not param.is_floating_point():
                continue
            if pname not in base_params:
                raise IncompatibleAdaptersError(f"Parameter {pname!r} of the fine-tuned model is not in the base.")
            ref = base_params[pname]
            if ref.shape != param.shape:
                raise IncompatibleAdaptersError(f"Parameter {pname!r} is {tuple(param.shape)} in the fine-tuned model "
                                                f"but {tuple(ref.shape)} in the base (resized vocabulary?).")
            deltas[pname] = (param.detach().float() - ref.detach().float())
        return cls(deltas, name=name, source=source,
                   base_model_name_or_path=getattr(base.config, "name_or_path", None))

    @classmethod
    def combine(cls, combination: Any, modules: str = "union", name: str = "composed",
                **merge_options: Any) -> TaskVector:
        """The exact sum of ``combination``'s task vectors (what ``Combination.linear`` calls), or a merge of them
        with ``merge_options`` (``method``, ``density``, ``seed``, ``majority_sign``: what ``compose`` passes)."""
        return merge_task_vectors(combination, name=name, **merge_options)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "kind": self.kind,
                "base_model_name_or_path": self.base_model_name_or_path, "parameters": len(self.deltas)}

    def sq_norm(self) -> float:
        return sum(float((d.double() ** 2).sum()) for d in self.deltas.values())


def merge_task_vectors(combination: Combination | TaskVector, method: str = "linear", density: float | None = None,
                       seed: int = 0, majority_sign: str = "total", name: str = "merged") -> TaskVector:
    """Merge task vectors per parameter with any method of :data:`MERGE_METHODS` (``linear`` = exact sum)."""
    combination = Combination._coerce(combination)
    check_merge_options(method, density, majority_sign)
    if combination.kind() != "full":
        raise ConfigError("merge_task_vectors takes TaskVector objects; use hfcl.compose.compose for adapters.")
    terms = combination.terms
    names = sorted({n for tv, _ in terms for n in tv.deltas})
    weights = torch.tensor([w for _, w in terms], dtype=torch.float64)
    fn = MERGE_METHODS[method]
    merged = {}
    for pname in names:
        shape = next(tv.deltas[pname].shape for tv, _ in terms if pname in tv.deltas)
        stack = torch.stack([tv.deltas[pname] if pname in tv.deltas else torch.zeros(shape) for tv, _ in terms])
        merged[pname] = fn(stack, weights, density=density, majority_sign=majority_sign,
                           generator=module_generator(seed, pname))
    first = terms[0][0]
    return TaskVector(merged, name=name, base_model_name_or_path=first.base_model_name_or_path,
                      provenance={"method": method, "weights": combination.weight_map(), "density": density,
                                  "seed": seed, "sources": [tv.describe() for tv, _ in terms]})


def apply_task_vector(base: Any, vector: TaskVector | Combination, lam: float = 1.0, in_place: bool = False) -> Any:
    """``theta_base + lam * tau`` (a Combination is summed exactly first)."""
    if isinstance(vector, Combination):
        vector = merge_task_vectors(vector)
    model = base if in_place else copy.deepcopy(base)
    params = dict(model.named_parameters())
    missing = [n for n in vector.deltas if n not in params]
    if missing:
        raise IncompatibleAdaptersError(f"Task vector has parameters the model lacks: {missing[:3]}.")
    with torch.no_grad():
        for pname, delta in vector.deltas.items():
            params[pname].add_(lam * delta.to(params[pname].dtype))
    return model


@dataclass
class ExtractResult:
    """The extracted LoRA, the relative Frobenius error per module, and what a LoRA cannot carry."""

    adapter: LoraAdapter
    errors: dict[str, float]
    uncaptured: dict[str, float]

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def recipe(self) -> dict[str, Any]:
        values = list(self.errors.values())
        return {"method": "extract_lora", "modules": len(values), "max_rank": self.adapter.max_rank,
                "compression": {"max_rel_error": max(values, default=0.0),
                                "mean_rel_error": sum(values) / len(values) if values else 0.0,
                                "per_module": {k: float(f"{v:.3e}") for k, v in sorted(self.errors.items())}},
                "uncaptured_delta_share": {k: float(f"{v:.3e}") for k, v in sorted(self.uncaptured.items())}}


def _linear_modules(model: Any) -> dict[str, tuple[Any, bool]]:
    from transformers.pytorch_utils import Conv1D

    found = {}
    for name, module in model.named_modules():
        if isinstance(module, Conv1D):
            found[name] = (module, True)
        elif isinstance(module, torch.nn.Linear):
            found[name] = (module, False)
    return found


def extract_lora(base: Any, finetuned: Any, rank: int = 16, rtol: float | None = None,
                 target_modules: Sequence[str] | None = None, exclude: Sequence[str] = ("lm_head",),
                 name: str = "extracted") -> ExtractResult:
    """Best rank-``rank`` LoRA of ``finetuned - base`` per Linear/Conv1D module (modules with no change skipped)."""
    if rank < 1:
        raise ConfigError(f"rank must be >= 1, got {rank}.")
    base_modules = _linear_modules(base)
    ft_modules = _linear_modules(finetuned)
    layouts = {fif for _, fif in ft_modules.values()}
    if len(layouts) > 1:
        raise ConfigError("The model mixes Linear and Conv1D layers; extract them separately with target_modules.")

    def wanted(mname: str) -> bool:
        if any(mname == e or mname.endswith("." + e) for e in exclude):
            return False
        return target_modules is None or any(mname == t or mname.endswith("." + t) for t in target_modules)

    deltas, errors, captured = {}, {}, set()
    for mname, (module, fif) in ft_modules.items():
        if not wanted(mname) or mname not in base_modules:
            continue
        ref = base_modules[mname][0]
        if ref.weight.shape != module.weight.shape:
            raise IncompatibleAdaptersError(f"Module {mname!r} is {tuple(module.weight.shape)} in the fine-tuned "
                                            f"model but {tuple(ref.weight.shape)} in the base.")
        captured.add(f"{mname}.weight")
        diff = module.weight.detach().float() - ref.weight.detach().float()
        if fif:
            diff = diff.T
        if not torch.any(diff):
            continue
        packed = truncated_svd(diff, rank=rank, rtol=rtol)
        deltas[mname], errors[mname] = packed.delta, packed.rel_error
    if not deltas:
        raise ConfigError("The fine-tuned model's Linear weights equal the base's: there is nothing to extract.")
    total = TaskVector.from_models(base, finetuned)
    norm = total.sq_norm() or 1.0
    uncaptured = {p: float((d.double() ** 2).sum()) / norm for p, d in total.deltas.items()
                  if p not in captured and torch.any(d)}
    adapter = LoraAdapter(deltas=deltas, name=name, fan_in_fan_out=layouts.pop() if layouts else False,
                          base_model_name_or_path=getattr(base.config, "name_or_path", None) or None,
                          task_type="CAUSAL_LM" if type(finetuned).__name__.endswith("ForCausalLM") else None)
    return ExtractResult(adapter, errors, uncaptured)
