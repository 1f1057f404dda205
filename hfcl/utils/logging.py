"""Library logging in the transformers style, and the one place where other libraries' known noise is silenced.

``get_logger(__name__)`` returns a child of the ``hfcl`` logger. The level defaults to WARNING and can be set with the
``HFCL_VERBOSITY`` environment variable (debug, info, warning, error) or :func:`set_verbosity`.

:func:`silence_known_noise` (called by hfcl before it loads, trains or saves a model; idempotent) hides the
per-model "Loading weights" / "Writing model shards" bars of transformers 5 and ignores the warnings listed in
:data:`KNOWN_HARMLESS_WARNINGS`. With ``HFCL_VERBOSITY=info`` or ``debug`` nothing is silenced. Add a warning there,
with the reason it is harmless, instead of filtering it where it appears.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings

_LOCK = threading.Lock()
_HANDLER: logging.Handler | None = None
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _default_level() -> int:
    name = os.environ.get("HFCL_VERBOSITY", "warning").lower()
    return _LEVELS.get(name, logging.WARNING)


def _configure_root() -> logging.Logger:
    global _HANDLER
    root = logging.getLogger("hfcl")
    with _LOCK:
        if _HANDLER is None:
            _HANDLER = logging.StreamHandler()
            _HANDLER.setFormatter(logging.Formatter("[hfcl|%(levelname)s|%(name)s] %(message)s"))
            root.addHandler(_HANDLER)
            root.setLevel(_default_level())
            root.propagate = False
    return root


def get_logger(name: str | None = None) -> logging.Logger:
    """Return a logger under the ``hfcl`` namespace."""
    _configure_root()
    if not name or name == "hfcl":
        return logging.getLogger("hfcl")
    return logging.getLogger(name if name.startswith("hfcl") else f"hfcl.{name}")


def set_verbosity(level: int | str) -> None:
    """Set the level of every hfcl logger (``"info"``, ``logging.DEBUG``, ...)."""
    if isinstance(level, str):
        level = _LEVELS[level.lower()]
    _configure_root().setLevel(level)


def get_verbosity() -> int:
    """Current level of the ``hfcl`` logger."""
    return _configure_root().getEffectiveLevel()


#: ``(category, message regex, why it is harmless)`` of warnings hfcl's own use of its dependencies triggers.
KNOWN_HARMLESS_WARNINGS: tuple[tuple[type[Warning], str, str], ...] = (
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found",
     "torch DataLoader on a CPU-only machine: pinning is skipped, nothing else changes"),
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated",
     "peft 0.21 reads transformers' old property name when wrapping a model; for peft to update, not the user"),
)
#: transformers progress bars that appear once per loaded or saved model and say nothing the user needs.
QUIET_BARS = frozenset({"Loading weights", "Writing model shards"})
_SILENCED = {"done": False}


def silence_known_noise(force: bool = False) -> bool:
    """Silence known harmless output once per process: transformers' per-model load/save progress bars
    (:data:`QUIET_BARS`, through ``transformers.utils.logging.set_tqdm_hook``; every other bar, the Trainer's and
    the Hub's included, is untouched) and :data:`KNOWN_HARMLESS_WARNINGS`. Does nothing when hfcl's
    verbosity is INFO or DEBUG (unless ``force``). Returns whether it silenced anything now."""
    if _SILENCED["done"] or (not force and get_verbosity() <= logging.INFO):
        return False
    with _LOCK:
        if _SILENCED["done"]:
            return False
        for category, message, _why in KNOWN_HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        try:
            from transformers.utils import logging as transformers_logging
        except ImportError:  # pragma: no cover - transformers is a hard dependency
            transformers_logging = None
        if transformers_logging is not None and hasattr(transformers_logging, "set_tqdm_hook"):
            previous = getattr(transformers_logging, "_tqdm_hook", None)

            def hook(factory, args, kwargs):
                if kwargs.get("desc") in QUIET_BARS:
                    kwargs = {**kwargs, "disable": True}
                return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

            transformers_logging.set_tqdm_hook(hook)
        _SILENCED["done"] = True
    return True
