"""Typed exceptions with actionable messages.

Every error hfcl raises on bad input derives from :class:`HfclError`, names the offending field or path and says how
to fix it, and is raised before any expensive work starts.
"""

from __future__ import annotations


class HfclError(Exception):
    """Base class of every error raised by hfcl."""


class ConfigError(HfclError, ValueError):
    """A configuration value or key is invalid (unknown key, wrong type, out of range)."""


class DataError(HfclError, ValueError):
    """A dataset is missing columns, is empty, or violates a documented constraint."""


class ModelNotAvailableError(HfclError, OSError):
    """A model id or path cannot be loaded (for example: no network and not cached)."""


class CacheError(HfclError):
    """A cache entry is unusable and could not be rebuilt."""


class TrainingError(HfclError, RuntimeError):
    """Training went wrong in a way that must stop the run (for example a non-finite loss)."""


class OutputExistsError(HfclError, FileExistsError):
    """An output directory already exists and overwriting was not requested."""
