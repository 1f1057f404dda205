"""Library logging in the transformers style.

``get_logger(__name__)`` returns a child of the ``hfcl`` logger. The level defaults to WARNING and can be set with the
``HFCL_VERBOSITY`` environment variable (debug, info, warning, error) or :func:`set_verbosity`.
"""

from __future__ import annotations

import logging
import os
import threading

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
