"""Exact adapter arithmetic: add, subtract, scale and negate on weight deltas.

A :class:`Combination` is a weighted sum of source adapters, kept symbolic until :meth:`Combination.linear` makes it
concrete, so equal sources collapse first (``0.5*a + 0.5*a`` is ``1.0*a`` and ``a - a`` is ``0*a``, which
materialises as an exact zero delta of rank 0). Materialising stacks the factors
(:func:`~hfcl.compose.deltas.stack_deltas`): the result's delta equals ``sum_i w_i dW_i`` exactly, with rank
``sum r_i`` per module.

Semantics next to the anchors:

* hfcl ``linear`` = task arithmetic on dW (Ilharco et al.; mergekit ``task_arithmetic`` with ``normalize: false``
  and ``lambda: 1``; PEFT ``add_weighted_adapter(combination_type="cat")`` with the rsLoRA scaling fixed).
  PEFT ``linear`` is *not* this: it mixes factors (``B' = sum sqrt|w_i s_i| B_i``, ``A' = sum sign * sqrt|w_j s_j|
  A_j``), so cross terms appear, ``[0.5, 0.5]`` acts like ``[1, 1]`` and ``[1, -1]`` of same-init adapters is zero.
* Weights are never normalised (mergekit ``linear`` divides by ``sum w``; AdapterHub normalises by default).
* Modules that an adapter does not target have a zero delta there (``modules="union"``, the exact answer); pass
  ``modules="strict"`` to refuse adapters that target different modules.
* (IA)^3 sources combine on ``l - 1`` (see :mod:`hfcl.compose.ia3`).

Layering: this module knows no adapter kind. Each kind's class (``LoraAdapter`` in :mod:`~hfcl.compose.deltas`,
``IA3Adapter`` in :mod:`~hfcl.compose.ia3`, ``TaskVector``) subclasses :class:`Composable` and provides
``combine(combination, modules, name)``, the exact weighted sum for its kind; those modules import this one, never the
other way round, so there is no import cycle.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..utils.logging import get_logger

logger = get_logger(__name__)
MODULE_POLICIES = ("union", "strict")


def _check_weight(weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real):
        raise ConfigError(f"Adapters can only be scaled by real numbers, not {type(weight).__name__}; "
                          "a product of two adapters is not a weight delta.")
    value = float(weight)
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"Adapter weight must be finite, got {value}.")
    return value


@dataclass(frozen=True)
class Combination:
    """``sum_i w_i * adapter_i`` with each source adapter (by identity) appearing once."""

    terms: tuple[tuple[Any, float], ...] = ()

    @classmethod
    def of(cls, adapter: Any, weight: float = 1.0) -> Combination:
        return cls(((adapter, _check_weight(weight)),))

    @classmethod
    def from_weights(cls, adapters: Mapping[str, Any], weights: Mapping[str, float]) -> Combination:
        """Build from ``{name: adapter}`` and ``{name: weight}`` (every weighted name must be an adapter)."""
        missing = [n for n in weights if n not in adapters]
        if missing:
            raise ConfigError(f"No adapter bound to name(s) {missing}; known: {sorted(adapters)}.")
        total = cls()
        for name, weight in weights.items():
            total = total + cls.of(adapters[name], weight)
        return total

    @property
    def adapters(self) -> list[Any]:
        return [a for a, _ in self.terms]

    @property
    def weights(self) -> list[float]:
        return [w for _, w in self.terms]

    def weight_map(self) -> dict[str, float]:
        """``{adapter name: weight}`` (names as the adapters were loaded)."""
        return {a.name: w for a, w in self.terms}

    def _merge(self, other: Combination, sign: float) -> Combination:
        terms = list(self.terms)
        for adapter, weight in other.terms:
            for i, (existing, w) in enumerate(terms):
                if existing is adapter:
                    terms[i] = (existing, w + sign * weight)
                    break
            else:
                terms.append((adapter, sign * weight))
        return Combination(tuple(terms))  # zero weights stay: they carry module names and shapes

    @staticmethod
    def _coerce(other: Any) -> Combination:
        if isinstance(other, Combination):
            return other
        if hasattr(other, "kind"):
            return Combination.of(other)
        raise ConfigError(f"Cannot add {type(other).__name__} to an adapter; only adapters and their "
                          "weighted sums combine (write 0.5*a, not a + 0.5).")

    def __add__(self, other: Any) -> Combination:
        return self._merge(self._coerce(other), 1.0)

    def __radd__(self, other: Any) -> Combination:
        if isinstance(other, numbers.Number) and other == 0:  # sum([...]) starts at 0
            return self
        return self._coerce(other)._merge(self, 1.0)

    def __sub__(self, other: Any) -> Combination:
        return self._merge(self._coerce(other), -1.0)

    def __mul__(self, weight: Any) -> Combination:
        value = _check_weight(weight)
        return Combination(tuple((a, w * value) for a, w in self.terms))

    __rmul__ = __mul__

    def __truediv__(self, weight: Any) -> Combination:
        value = _check_weight(weight)
        if value == 0.0:
            raise ConfigError("Cannot divide an adapter by zero.")
        return self * (1.0 / value)

    def __neg__(self) -> Combination:
        return self * -1.0

    def kind(self) -> str:
        kinds = {a.kind for a in self.adapters}
        if len(kinds) > 1:
            raise ConfigError(f"Cannot combine adapters of different types {sorted(kinds)} "
                              f"({', '.join(f'{a.name}: {a.kind}' for a in self.adapters)}).")
        return kinds.pop() if kinds else "lora"

    def linear(self, modules: str = "union", name: str = "composed") -> Any:
        """The exact weighted sum as a new adapter (stacked factors for LoRA; ``1 + sum w (l - 1)`` for (IA)^3;
        the element-wise sum for task vectors), computed by the adapters' own ``combine``."""
        self.kind()  # one kind only
        if not self.terms:
            raise ConfigError("Nothing to combine: the expression names no adapter.")
        return type(self.adapters[0]).combine(self, modules=modules, name=name)


class Composable:
    """Operators shared by every adapter kind: ``w1*a + w2*b - c`` builds a :class:`Combination`.

    Subclasses set ``kind`` and implement ``combine(combination, modules, name)`` (a classmethod or staticmethod).
    """

    kind = "lora"

    @classmethod
    def combine(cls, combination: Combination, modules: str = "union", name: str = "composed") -> Any:
        raise ConfigError(f"{cls.__name__} adapters cannot be combined.")

    def _as_combination(self) -> Combination:
        return Combination.of(self)

    def __add__(self, other):
        return self._as_combination() + other

    def __radd__(self, other):
        return self._as_combination().__radd__(other)

    def __sub__(self, other):
        return self._as_combination() - other

    def __rsub__(self, other):
        return (-self._as_combination()).__radd__(other)

    def __mul__(self, weight):
        return self._as_combination() * weight

    __rmul__ = __mul__

    def __truediv__(self, weight):
        return self._as_combination() / weight

    def __neg__(self):
        return -self._as_combination()


def union_modules(adapters: Iterable[Any]) -> list[str]:
    """Sorted union of module names over adapters (each has ``.deltas`` or ``.vectors``)."""
    names: set[str] = set()
    for adapter in adapters:
        names |= set(getattr(adapter, "deltas", None) or getattr(adapter, "vectors", {}))
    return sorted(names)


def check_module_policy(adapters: Sequence[Any], modules: str) -> list[str]:
    """Union of target modules; with ``modules="strict"`` adapters must all target the same modules."""
    if modules not in MODULE_POLICIES:
        raise ConfigError(f"modules must be one of {MODULE_POLICIES}, got {modules!r}.")
    names = union_modules(adapters)
    for adapter in adapters:
        own = set(getattr(adapter, "deltas", None) or getattr(adapter, "vectors", {}))
        missing = [n for n in names if n not in own]
        if missing and modules == "strict":
            raise ConfigError(f"Adapter {adapter.name!r} does not target {len(missing)} module(s) that others do "
                              f"(first: {missing[:3]}). Use modules='union' (CLI: --union-modules) to treat them "
                              "as zero deltas, which is exact.")
        if missing:
            logger.info("Adapter %r has no delta on %d module(s); treating them as zero.", adapter.name, len(missing))
    return names


def linear_combination(terms: Sequence[tuple[Any, float]], modules: str = "union", name: str = "composed") -> Any:
    """Exact ``sum_i w_i a_i`` of ``(adapter, weight)`` terms as one adapter (for LoRA: rank ``sum r_i`` per module,
    :func:`hfcl.compose.deltas.lora_linear_combination`)."""
    if not terms:
        raise ConfigError("Nothing to combine: the expression names no adapter.")
    return Combination(tuple((a, float(w)) for a, w in terms)).linear(modules=modules, name=name)


# Functional spellings of the operators.
def add(*adapters: Any) -> Combination:
    """``a + b + ...`` as a Combination."""
    return sum((Combination._coerce(a) for a in adapters), Combination())


def subtract(a: Any, b: Any) -> Combination:
    return Combination._coerce(a) - b


def scale(a: Any, weight: float) -> Combination:
    return Combination._coerce(a) * weight


def negate(a: Any) -> Combination:
    return -Combination._coerce(a)
