"""Exceptions of adapter transfer (defined in :mod:`hfcl.errors`; re-exported here for compatibility)."""

from __future__ import annotations

from ..errors import IncompatibleBaseError, TransferError

__all__ = ["IncompatibleBaseError", "TransferError"]
