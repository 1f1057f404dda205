"""The Compose tab's engine: weights for the loaded LoRA adapters -> the exactly composed model -> its answer.

Uses :mod:`hfcl.compose` (``compose(w1*a + w2*b)`` is exact task arithmetic on the adapters' weight deltas): the
composed delta is added to a copy of the adapters' shared base model. When :mod:`hfcl.compose` cannot be imported,
:func:`compose_status` says so and the tab shows that reason instead of any output.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from .models import ModelSpec


def compose_status() -> tuple[bool, str]:
    """``(available, reason)``: whether exact composition (:mod:`hfcl.compose`) can be used in this process."""
    try:
        from ..compose import compose, load_adapter  # noqa: F401
        from ..compose.negation import apply_lora_in_place  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure disables the tab with its reason
        return False, f"hfcl.compose is not available ({type(exc).__name__}: {exc})."
    return True, "hfcl.compose"


class Composer:
    """Composes the LoRA adapters among ``specs`` with chosen weights and caches the last few composed models.

    ``base_loader(name_or_path) -> (model, tokenizer)`` loads the adapters' base model (default:
    :func:`hfcl.zoo.load_model`). Composed models are built per weight vector, never modified after, and shared
    read-only between visitors (an LRU of ``cache_size``).
    """

    def __init__(self, specs: Sequence[ModelSpec], base_loader: Any = None, zoo_config: Any = None,
                 forget_split: str = "forget10", cache_size: int = 2) -> None:
        ok, reason = compose_status()
        if not ok:
            raise ConfigError(reason)
        self.specs = [s for s in specs if s.is_adapter]
        if not self.specs:
            raise ConfigError("No PEFT LoRA adapter among the models: pass adapter folders, e.g. "
                              "--models target,math=out/math_lora,code=out/code_lora.")
        self._base_loader = base_loader
        self.zoo_config = zoo_config
        self.forget_split = forget_split
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._adapters: dict[str, Any] | None = None
        self._base: tuple[Any, Any] | None = None
        self._cache: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def _load(self) -> None:
        from ..compose import load_adapter
        from ..compose.guards import check_same_base

        adapters = {s.name: load_adapter(str(s.local_dir), name=s.name) for s in self.specs}
        check_same_base(list(adapters.values()))
        base_id = next(iter(adapters.values())).base_model_name_or_path
        if not base_id:
            raise ConfigError("The adapters do not name their base model (base_model_name_or_path).")
        if self._base_loader is not None:
            model, tokenizer = self._base_loader(base_id)
        else:
            from ..zoo import load_model

            model, tokenizer = load_model(base_id, self.zoo_config, self.forget_split)
        model.eval()
        self._adapters, self._base = adapters, (model, tokenizer)

    def model_for(self, weights: Mapping[str, float]) -> tuple[Any, Any, dict[str, Any]]:
        """``(model, tokenizer, recipe)`` for ``sum(weights[n] * adapter_n)`` (missing names weigh 0)."""
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ConfigError(f"Unknown adapter(s) {', '.join(unknown)}; adapters: {', '.join(self.names)}.")
        key = tuple(round(float(weights.get(n, 0.0)), 6) for n in self.names)
        with self._lock:
            if self._adapters is None:
                self._load()
            if key in self._cache:
                self._cache.move_to_end(key)
                model, tokenizer = self._cache[key]
                return model, tokenizer, {"weights": dict(zip(self.names, key)), "cached": True}
            base, tokenizer = self._base
            model = copy.deepcopy(base)
            recipe: dict[str, Any] = {"weights": dict(zip(self.names, key)), "cached": False}
            terms = [(self._adapters[n], w) for n, w in zip(self.names, key) if w != 0.0]
            if terms:
                from ..compose import compose
                from ..compose.negation import apply_lora_in_place

                combination = terms[0][1] * terms[0][0]
                for adapter, weight in terms[1:]:
                    combination = combination + weight * adapter
                result = compose(combination)
                apply_lora_in_place(model, result.adapter)
                recipe = {**result.recipe, **recipe}
            model.eval()
            self._cache[key] = (model, tokenizer)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return model, tokenizer, recipe
