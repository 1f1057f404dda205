"""Exceptions of adapter transfer."""

from __future__ import annotations

from ..errors import ConfigError, HfclError


class TransferError(HfclError):
    """A transfer cannot run as asked (base mismatch, missing adapter, too few seeds...)."""


class IncompatibleBaseError(TransferError, ConfigError):
    """The adapter's shapes, modules or tokenizer do not fit the target base under ``copy``."""
