"""The Gradio Space: side-by-side models with the probability of the true answer, chat, eval cards and composition.

>>> from hfcl.space import launch_space
>>> launch_space("target,retain,unlearned=out/ga")          # doctest: +SKIP  (serves on http://127.0.0.1:7860)

Logic is importable and tested without a browser: :mod:`hfcl.space.inference` (prompt fitting, ``p(truth)``,
ROUGE-L, streamed greedy answers), :mod:`hfcl.space.compare`, :mod:`hfcl.space.cards`, :mod:`hfcl.space.composer`,
:mod:`hfcl.space.answers` (is an answer text or garbled output); :mod:`hfcl.space.app` builds the ``gr.Blocks``.
Gradio is imported only when an app is built.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "build_space": "serve", "launch_space": "serve", "launch_demo_space": "serve", "build_space_from_env": "serve",
    "launch": "serve", "SpaceSettings": "app", "build_app": "app", "ModelSpec": "models",
    "ModelRegistry": "models", "parse_model_specs": "models",
    "truth_probability": "inference", "rouge_l": "inference", "stream_greedy": "inference", "fit_prompt": "inference",
    "Composer": "composer", "compose_status": "composer", "find_reports": "cards", "load_presets": "presets",
    "garbage_reason": "answers", "within_noise": "cards",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'hfcl.space' has no attribute {name!r}")
