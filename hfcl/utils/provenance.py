"""Provenance facts recorded with every run and report: library versions, hardware, time."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from typing import Any

_LIBRARIES = ("hfcl", "torch", "transformers", "peft", "trl", "datasets", "huggingface_hub", "accelerate", "tokenizers")


def library_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of hfcl, the stack it runs on and ``extra`` packages (``"not installed"`` when absent)."""
    versions = {}
    for name in _LIBRARIES + tuple(extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware() -> dict[str, Any]:
    """Where the numbers were produced: CPU count, accelerator, platform."""
    from .distributed import world_size

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count(), "processes": world_size()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def provenance() -> dict[str, Any]:
    """Versions, hardware and a UTC timestamp in one dict."""
    return {"versions": library_versions(), "hardware": hardware(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
