"""Typed exceptions with actionable messages.

Every error hfcl raises on bad input derives from :class:`HfclError`, names the offending field or path and says how
to fix it, and is raised before any expensive work starts. This is the one module that defines them; the old homes
(``hfcl.hub.errors``, ``hfcl.transfer.errors``, ``hfcl.compose.guards``, ``hfcl.space.inference``) re-export theirs.
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


# --- Hub (pushes, cards, run directories) --------------------------------------------------------------------------
class HubError(HfclError):
    """A Hub operation failed; the message says which one and what to do."""


class RunDirError(ConfigError):
    """The run directory cannot be pushed (missing weights, pickle-only weights, unreadable report...)."""


class HubAuthError(HubError, PermissionError):
    """401/403: no token, an invalid token, or a token without write access to the namespace."""


class HubPaymentRequiredError(HubError):
    """402: the Hub wants a paid plan for this (for example a Gradio or Docker Space on a free account)."""


class HubUnavailableError(HubError, ConnectionError):
    """5xx or connection errors persisted through every retry."""


class TokenLeakError(HubError):
    """A file about to be written or pushed contains the Hub token; nothing was written or pushed."""


# --- adapter composition and transfer ------------------------------------------------------------------------------
class IncompatibleAdaptersError(ConfigError):
    """Adapters cannot be combined (different bases, shapes, layouts or types)."""


class UnsupportedAdapterError(ConfigError):
    """The adapter type or one of its options has no exact weight-delta meaning in hfcl."""


class TransferError(HfclError):
    """A transfer cannot run as asked (base mismatch, missing adapter, too few seeds...)."""


class IncompatibleBaseError(TransferError, ConfigError):
    """The adapter's shapes, modules or tokenizer do not fit the target base under ``copy``."""


# --- the Space -----------------------------------------------------------------------------------------------------
class SpaceInputError(ConfigError):
    """A visitor's input the Space cannot use (empty prompt, unknown model, ...); shown in the UI, not raised."""


__all__ = [
    "CacheError",
    "ConfigError",
    "DataError",
    "HfclError",
    "HubAuthError",
    "HubError",
    "HubPaymentRequiredError",
    "HubUnavailableError",
    "IncompatibleAdaptersError",
    "IncompatibleBaseError",
    "ModelNotAvailableError",
    "OutputExistsError",
    "RunDirError",
    "SpaceInputError",
    "TokenLeakError",
    "TrainingError",
    "TransferError",
    "UnsupportedAdapterError",
]
