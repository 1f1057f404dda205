"""Merges of adapters on their true weight deltas, and :func:`compose`, the one entry point for every method.

Each method is one pure function over a stack of dense per-module deltas ``T: (N, out, in)`` and weights ``w: (N,)``,
registered in :data:`MERGES`. ``linear`` never densifies: it stacks factors exactly (and
:mod:`~hfcl.compose.compress` re-factors when a rank is asked). The element-wise methods densify one module at a time,
merge, and re-factor by truncated SVD to ``rank`` (default: the sum of the source ranks of that module, capped by the
matrix size), reporting the relative Frobenius error of that re-factoring per module.

Conventions, next to PEFT 0.21 (``peft.utils.merge_utils``) and mergekit 0.1.5:

============== ======================================== =============================== ==============================
step           hfcl                                     PEFT                            mergekit
============== ======================================== =============================== ==============================
object         dW_i = s_i B_i A_i (true task vector)    LoRA factors A, B separately    full weights minus base
                                                        (``*_svd`` types: dW)
trim (TIES)    top-k ``|dW_i|``, k = int(density*numel)  same                            same
sign election  sign of ``sum w_i T_i`` (weighted, so a   sign of ``sum T_i`` (unweighted; sign of ``sum w_i T_i``
               negative weight votes against)           negative weights do not vote)
disjoint mean  ``sum_agree w_i T_i / count_agree``       same                            ``/ sum_agree w_i``
DARE rescale   ``1/density`` (Bernoulli keep mask)       ``1/density`` (>= 0.19 only)    L1-norm matching
DARE seed      ``seed`` + crc32(module name), per module global RNG                      global RNG
weights        never normalised                         never normalised                ``normalize`` option
============== ======================================== =============================== ==============================

Sign ties (elected sign 0) go to +1, as in PEFT. With one adapter of weight 1 and density 1 every method returns
the adapter itself (identity merge).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError
from .algebra import Combination, check_module_policy, linear_combination
from .compress import compress_delta, truncated_svd
from .deltas import LoraAdapter, LowRankDelta
from .guards import check_same_base, check_shapes

MAJORITY_SIGN = ("total", "frequency")
AUTO_RANK = -1  # internal marker of rank="auto"


def check_merge_options(method: str, density: float | None, majority_sign: str) -> None:
    """A known merge method, a density in (0, 1] where the method needs one, and a known majority-sign rule."""
    if get_merge(method).needs_density:
        _check_density(density)
    if majority_sign not in MAJORITY_SIGN:
        raise ConfigError(f"majority_sign must be one of {MAJORITY_SIGN}, got {majority_sign!r}.")


def _check_density(density: float | None) -> float:
    if density is None or not 0.0 < float(density) <= 1.0:
        raise ConfigError(f"density must be in (0, 1] for this merge method, got {density!r}.")
    return float(density)


def _weights(weights: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    return weights.to(deltas.dtype).reshape(-1, *([1] * (deltas.dim() - 1)))


def linear_merge(deltas: torch.Tensor, weights: torch.Tensor, **_: Any) -> torch.Tensor:
    """Task arithmetic ``sum_i w_i T_i``."""
    return (_weights(weights, deltas) * deltas).sum(0)


def trim_by_magnitude(deltas: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``int(density * numel)`` largest-magnitude entries of each ``T_i`` (others set to 0)."""
    density = _check_density(density)
    if density >= 1.0:
        return deltas
    flat = deltas.reshape(deltas.shape[0], -1)
    k = int(density * flat.shape[1])
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, flat.abs().topk(k, dim=1).indices, True)
    return (flat * mask).reshape(deltas.shape)


def drop_and_rescale(deltas: torch.Tensor, density: float, generator: torch.Generator | None) -> torch.Tensor:
    """DARE: keep each entry with probability ``density``, rescale kept entries by ``1/density``."""
    density = _check_density(density)
    if density >= 1.0:
        return deltas
    keep = torch.rand(deltas.shape, generator=generator, dtype=torch.float32) < density
    return deltas * keep.to(deltas.dtype) / density


def elect_sign(weighted: torch.Tensor, method: str = "total") -> torch.Tensor:
    """Per-entry majority sign of the weighted deltas (``total``: sign of the sum; ``frequency``: sum of signs)."""
    if method not in MAJORITY_SIGN:
        raise ConfigError(f"majority_sign must be one of {MAJORITY_SIGN}, got {method!r}.")
    score = weighted.sum(0) if method == "total" else weighted.sign().sum(0)
    sign = score.sign()
    return torch.where(sign == 0, torch.ones_like(sign), sign)


def disjoint_mean(weighted: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Mean over the sources whose (non-zero) weighted entry agrees with the elected sign."""
    agree = (weighted.sign() == sign.unsqueeze(0)) & (weighted != 0)
    total = (weighted * agree).sum(0)
    return total / agree.sum(0).clamp(min=1).to(weighted.dtype)


def magnitude_prune(deltas: torch.Tensor, weights: torch.Tensor, density: float, **_: Any) -> torch.Tensor:
    """Trim each ``T_i`` to its top-``density`` entries by magnitude, then ``sum_i w_i T_i``."""
    return linear_merge(trim_by_magnitude(deltas, density), weights)


def ties(deltas: torch.Tensor, weights: torch.Tensor, density: float, majority_sign: str = "total",
         **_: Any) -> torch.Tensor:
    """TIES-merging (Yadav et al. 2023): trim, elect sign on weighted deltas, disjoint mean."""
    weighted = _weights(weights, deltas) * trim_by_magnitude(deltas, density)
    return disjoint_mean(weighted, elect_sign(weighted, majority_sign))


def dare_linear(deltas: torch.Tensor, weights: torch.Tensor, density: float,
                generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
    """DARE (Yu et al. 2024): drop and rescale each ``T_i``, then ``sum_i w_i T_i``."""
    return linear_merge(drop_and_rescale(deltas, density, generator), weights)


def dare_ties(deltas: torch.Tensor, weights: torch.Tensor, density: float, majority_sign: str = "total",
              generator: torch.Generator | None = None, **_: Any) -> torch.Tensor:
    """DARE drop and rescale, then TIES sign election and disjoint mean."""
    weighted = _weights(weights, deltas) * drop_and_rescale(deltas, density, generator)
    return disjoint_mean(weighted, elect_sign(weighted, majority_sign))


def source_line(adapter: Any, weight: float) -> str:
    """One human-readable line per source for cards: name, weight, where it came from."""
    where = adapter.source or "in memory"
    rev = f"@{adapter.revision}" if getattr(adapter, "revision", None) else ""
    rank = f", LoRA rank {adapter.max_rank}" if hasattr(adapter, "max_rank") else ""
    return f"`{adapter.name}` x {weight:g}: {where}{rev} ({adapter.kind}{rank})"


@dataclass(frozen=True)
class MergeMethod:
    """One merge method: its pure function over a stack of dense deltas, its card text and the options it reads."""

    name: str
    merge: Callable[..., torch.Tensor]
    description: str
    needs_density: bool = False  # reads ``density`` in (0, 1]
    seeded: bool = False  # reads ``seed`` (random drop)
    elects_sign: bool = False  # reads ``majority_sign``


#: Every merge method, one entry each: adding a method is one function and one line here.
MERGES: dict[str, MergeMethod] = {m.name: m for m in [
    MergeMethod("linear", linear_merge, "exact task arithmetic on the LoRA weight deltas (dW = sum_i w_i s_i B_i A_i, "
                "factors stacked; optionally re-factored to a lower rank by an optimal truncated SVD)"),
    MergeMethod("ties", ties, "TIES-merging on the true weight deltas: trim to the top-density entries, elect the "
                "sign of the weighted sum, disjoint mean", needs_density=True, elects_sign=True),
    MergeMethod("dare_linear", dare_linear, "DARE on the true weight deltas: seeded random drop with 1/density "
                "rescale, then weighted sum", needs_density=True, seeded=True),
    MergeMethod("dare_ties", dare_ties, "DARE drop and rescale on the true weight deltas, then TIES sign election "
                "and disjoint mean", needs_density=True, seeded=True, elects_sign=True),
    MergeMethod("magnitude_prune", magnitude_prune, "magnitude pruning of each weight delta to the top-density "
                "entries, then weighted sum", needs_density=True),
]}


def get_merge(name: str) -> MergeMethod:
    """The registered merge ``name`` (a :class:`~hfcl.errors.ConfigError` listing the others if unknown)."""
    if name not in MERGES:
        raise ConfigError(f"Unknown method {name!r}; choose one of {', '.join(MERGES)}.")
    return MERGES[name]


def __getattr__(name: str) -> Any:
    # The three tables this registry replaced, derived from it (old public names, read-only views).
    if name == "MERGE_METHODS":
        return {n: m.merge for n, m in MERGES.items()}
    if name == "METHOD_DESCRIPTIONS":
        return {n: m.description for n, m in MERGES.items()}
    if name == "NEEDS_DENSITY":
        return tuple(n for n, m in MERGES.items() if m.needs_density)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def module_generator(seed: int, module: str) -> torch.Generator:
    """Per-module RNG: results do not depend on which other modules are merged or in what order."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(module.encode())) % (2 ** 63))


@dataclass
class ComposeResult:
    """The composed adapter, the per-module relative Frobenius error of any re-factoring, and the recipe."""

    adapter: Any
    errors: dict[str, float] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def compose(combination: Combination | Any, method: str = "linear", rank: int | str | None = None,
            density: float | None = None, seed: int = 0, majority_sign: str = "total", modules: str = "union",
            force: bool = False, name: str = "composed") -> ComposeResult:
    """Compose adapters: ``method="linear"`` is exact task arithmetic; the others merge true deltas.

    ``combination`` is a :class:`Combination` (``0.7*a + 0.3*b``) or a single adapter. ``rank`` compresses the
    result optimally (``linear``) or sets the re-factoring rank (other methods); ``rank="auto"`` keeps each module's
    numerical rank (lossless: only directions at round-off level are dropped, e.g. when sources share directions).
    Checks run before any work.
    """
    combination = Combination._coerce(combination)
    if rank == "auto":
        rank = AUTO_RANK
    elif isinstance(rank, str):
        if not rank.isdigit():
            raise ConfigError(f"rank must be a positive integer or 'auto', got {rank!r}.")
        rank = int(rank)
    check_merge_options(method, density, majority_sign)
    if rank is not None and rank != AUTO_RANK and rank < 1:
        raise ConfigError(f"rank must be a positive integer, got {rank}.")
    adapters = combination.adapters
    if not adapters:
        raise ConfigError("Nothing to compose: no adapter given.")
    kind = combination.kind()
    if kind == "full":
        if rank is not None:
            raise ConfigError("Full-model task vectors are dense; rank does not apply (use extract_lora to get a "
                              "LoRA of a task vector).")
        started = time.perf_counter()  # the task vectors merge themselves (hfcl.compose.task_vectors)
        merged = type(adapters[0]).combine(combination, name=name, method=method, density=density, seed=seed,
                                           majority_sign=majority_sign)
        recipe = {**merged.provenance, "kind": kind, "compose_seconds": round(time.perf_counter() - started, 4)}
        return ComposeResult(merged, {}, recipe)
    check_same_base(adapters, force=force)
    check_shapes(adapters)
    if kind == "ia3" and (method != "linear" or rank is not None):
        raise ConfigError("(IA)^3 adapters compose with method='linear' and no rank (their vectors are not low rank).")
    check_module_policy(adapters, modules)
    started = time.perf_counter()
    if kind == "ia3":
        result, errors = combination.linear(modules=modules, name=name), {}
    elif method == "linear":
        result = linear_combination(combination.terms, modules=modules, name=name)
        errors = {m: 0.0 for m in result.deltas}
        if rank is not None:
            for module, delta in list(result.deltas.items()):
                packed = compress_delta(delta, rank=None if rank == AUTO_RANK else rank)
                result.deltas[module], errors[module] = packed.delta, packed.rel_error
    else:
        result, errors = _elementwise(combination, method, rank, density, seed, majority_sign, modules, name)
    recipe = {"method": method, "weights": combination.weight_map(), "rank": "auto" if rank == AUTO_RANK else rank,
              "density": density,
              "seed": seed if MERGES[method].seeded else None,
              "majority_sign": majority_sign if MERGES[method].elects_sign else None, "modules": modules,
              "sources": [source_line(a, w) for a, w in combination.terms],
              "source_adapters": [a.describe() for a in adapters], "kind": kind,
              "method_description": MERGES[method].description,
              "compression": _error_summary(errors), "compose_seconds": round(time.perf_counter() - started, 4)}
    result.provenance = {**result.provenance, "recipe": recipe}
    return ComposeResult(result, errors, recipe)


def _elementwise(combination: Combination, method: str, rank: int | None, density: float | None, seed: int,
                 majority_sign: str, modules: str, name: str) -> tuple[LoraAdapter, dict[str, float]]:
    fn = MERGES[method].merge
    terms = combination.terms
    names = check_module_policy([a for a, _ in terms], modules)
    weights = torch.tensor([w for _, w in terms], dtype=torch.float64)
    deltas, errors = {}, {}
    for module in names:
        present = [a.deltas[module] for a, _ in terms if module in a.deltas]
        shape, dtype = present[0].shape, present[0].A.dtype
        stack = torch.stack([a.deltas[module].dense(torch.float32) if module in a.deltas
                             else torch.zeros(shape, dtype=torch.float32) for a, _ in terms])
        merged = fn(stack, weights, density=density, majority_sign=majority_sign,
                    generator=module_generator(seed, module))
        if rank == AUTO_RANK:
            packed = truncated_svd(merged, rank=None)
        else:
            target = rank if rank is not None else min(sum(d.rank for d in present), *shape)
            packed = truncated_svd(merged, rank=target)
        deltas[module] = LowRankDelta(packed.delta.A.to(dtype), packed.delta.B.to(dtype))
        errors[module] = packed.rel_error
    first = terms[0][0]
    adapter = LoraAdapter(deltas=deltas, name=name, base_model_name_or_path=first.base_model_name_or_path,
                          base_revision=first.base_revision, fan_in_fan_out=first.fan_in_fan_out,
                          task_type=first.task_type,
                          provenance={"sources": [a.describe() for a, _ in terms],
                                      "weights": combination.weight_map()})
    return adapter, errors


def _error_summary(errors: dict[str, float]) -> dict[str, Any]:
    if not errors:
        return {"max_rel_error": 0.0, "mean_rel_error": 0.0, "per_module": {}}
    values = list(errors.values())
    return {"max_rel_error": max(values), "mean_rel_error": sum(values) / len(values),
            "per_module": {k: float(f"{v:.3e}") for k, v in sorted(errors.items())}}
