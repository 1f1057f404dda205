"""Which models the Space shows, and loading them once per process.

A model is given as ``name=source`` or just ``source``: a zoo stage (``target``, ``retain``, ``base``), a local
folder (full model, PEFT adapter or hfcl run directory) or a Hub id. ``parse_model_specs("target,retain,
unlearned=out/ga")`` gives three :class:`ModelSpec`; :class:`ModelRegistry` loads each on first use, caches it for
the life of the process (behind a lock, so concurrent visitors never load twice) and never mutates it afterwards.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelNotAvailableError
from ..utils.logging import get_logger

logger = get_logger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
MAX_MODELS = 4


@dataclass(frozen=True)
class ModelSpec:
    """A model shown in the Space: its display ``name`` and its ``source`` (zoo stage, folder or Hub id)."""

    name: str
    source: str

    @property
    def local_dir(self) -> Path | None:
        """The source as an existing local folder, else ``None`` (zoo stage or Hub id)."""
        from ..zoo.build import MODEL_STAGES

        if self.source in MODEL_STAGES:
            return None
        path = Path(self.source).expanduser()
        return path if path.is_dir() else None

    @property
    def is_adapter(self) -> bool:
        """Whether the source is a local PEFT adapter folder."""
        folder = self.local_dir
        return folder is not None and (folder / "adapter_config.json").is_file()


def _default_name(source: str) -> str:
    name = Path(source.rstrip("/\\")).name or source
    return re.sub(r"[^A-Za-z0-9_.+-]", "-", name)[:64] or "model"


def parse_model_specs(models: str | Iterable[str] | Iterable[ModelSpec], max_models: int = MAX_MODELS,
                      ) -> list[ModelSpec]:
    """``ModelSpec`` list from ``"target,retain,unlearned=out/ga"`` (or a list of such items, or of specs).

    Raises :class:`ConfigError` on an empty list, more than ``max_models`` models, a bad or duplicate name.
    """
    if isinstance(models, str):
        items: list[Any] = [m.strip() for m in models.split(",")]
    else:
        items = list(models)
    specs: list[ModelSpec] = []
    for item in items:
        if isinstance(item, ModelSpec):
            specs.append(item)
            continue
        item = str(item).strip()
        if not item:
            continue
        name, sep, source = item.partition("=")
        if not sep:
            name, source = _default_name(item), item
        name, source = name.strip(), source.strip()
        if not source:
            raise ConfigError(f"Model {item!r} has no source; write NAME=SOURCE (a zoo stage, folder or Hub id).")
        if not _NAME.match(name):
            raise ConfigError(f"Model name {name!r} must be 1-64 letters, digits or _.+- (got it from {item!r}).")
        specs.append(ModelSpec(name, source))
    if not specs:
        raise ConfigError("No model given; pass --models target,retain (zoo stages, folders or Hub ids).")
    if len(specs) > max_models:
        raise ConfigError(f"{len(specs)} models given; the Space compares at most {max_models} side by side.")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"Model name(s) {', '.join(duplicates)} given twice; name them: --models a=PATH,b=PATH.")
    return specs


class ModelRegistry:
    """Loads each :class:`ModelSpec` once per process (``(model, tokenizer)`` in eval mode, never modified).

    ``zoo_config`` is the :class:`~hfcl.zoo.ZooConfig` of zoo stages (``None`` = the default recipe). ``loader``
    replaces :func:`hfcl.zoo.load_model` (tests pass pre-built models).
    """

    def __init__(self, specs: Sequence[ModelSpec] | str, zoo_config: Any = None, forget_split: str = "forget10",
                 loader: Any = None) -> None:
        self.specs = parse_model_specs(specs)
        self.zoo_config = zoo_config
        self.forget_split = forget_split
        self._loader = loader
        self._loaded: dict[str, tuple[Any, Any]] = {}
        self._locks = {spec.name: threading.Lock() for spec in self.specs}

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def spec(self, name: str) -> ModelSpec:
        for spec in self.specs:
            if spec.name == name:
                return spec
        raise ConfigError(f"Unknown model {name!r}; loaded models: {', '.join(self.names)}.")

    def get(self, name: str) -> tuple[Any, Any]:
        """``(model, tokenizer)`` of ``name``, loaded on first call."""
        spec = self.spec(name)
        if name in self._loaded:
            return self._loaded[name]
        with self._locks[name]:
            if name not in self._loaded:
                self._loaded[name] = self._load(spec)
        return self._loaded[name]

    def _load(self, spec: ModelSpec) -> tuple[Any, Any]:
        logger.info("Loading %s from %s", spec.name, spec.source)
        if self._loader is not None:
            model, tokenizer = self._loader(spec.source)
        else:
            from ..zoo import load_model

            source = str(Path(spec.source).expanduser()) if os.path.isdir(os.path.expanduser(spec.source)) \
                else spec.source
            try:
                model, tokenizer = load_model(source, self.zoo_config, self.forget_split)
            except ModelNotAvailableError:
                raise  # already says what to do
            except Exception as exc:
                raise ModelNotAvailableError(f"Could not load model {spec.name!r} from {spec.source!r}: "
                                             f"{type(exc).__name__}: {exc}") from exc
        model.eval()
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        return model, tokenizer

    def load_all(self) -> None:
        """Load every model now (the CLI does this before serving, so the first visitor does not wait)."""
        for name in self.names:
            self.get(name)
