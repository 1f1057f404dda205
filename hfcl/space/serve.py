"""Assemble and launch the Space: from Python, the CLI, the demo, or a Space's variables (``spaces/app.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..utils.logging import get_logger
from .app import SpaceSettings, build_app
from .cards import parse_report_paths
from .composer import Composer, compose_status
from .models import ModelRegistry, ModelSpec, parse_model_specs
from .presets import load_presets

logger = get_logger(__name__)
DEFAULT_MODELS = "target,retain"
#: Space variables (Settings -> Variables on the Hub) read by :func:`build_space_from_env`.
ENV_VARS = {"HFCL_MODELS": "models", "HFCL_REPORTS": "reports", "HFCL_FORGET_SPLIT": "forget_split",
            "HFCL_PRESET": "preset", "HFCL_CONTINUAL": "continual"}


def build_space(models: str | Sequence[str] | Sequence[ModelSpec] = DEFAULT_MODELS, *, zoo_config: Any = None,
                forget_split: str = "forget10", reports: str | Mapping[str, str] | None = None,
                presets_per_split: int = 12, data_source: str = "embedded", settings: SpaceSettings | None = None,
                preload: bool = True, loader: Any = None, continual: Any = None):
    """Build the Gradio app (not launched) for ``models`` (``"target,retain,unlearned=out/ga"``: zoo stages,
    local folders, PEFT adapter folders or Hub ids; 1 to 4 of them).

    ``zoo_config``: recipe of zoo stages (``None`` = default; :func:`hfcl.zoo.tiny_config` for a quick look).
    ``reports``: extra ``name=path`` eval reports (run directories' ``eval_report.json`` are found anyway).
    ``preload`` loads every model before returning, so the first visitor does not wait and a bad model id fails
    here with a clear message. ``continual``: a continual run folder or Hub repo (``hfcl push --stages``), or a
    :class:`~hfcl.space.continual.ContinualRun`, for the Continual tab. Returns the ``gr.Blocks``;
    ``demo.hfcl_registry`` holds the loaded models.
    """
    specs = parse_model_specs(models)
    report_paths = parse_report_paths(reports)
    registry = ModelRegistry(specs, zoo_config, forget_split, loader=loader)
    if preload:
        registry.load_all()
    presets = load_presets(zoo_config, forget_split, presets_per_split, source=data_source)
    composer, reason = None, ""
    if any(s.is_adapter for s in specs):
        ok, reason = compose_status()
        if ok:
            composer = Composer(specs, zoo_config=zoo_config, forget_split=forget_split)
            reason = ""
    else:
        reason = "None of the loaded models is a PEFT adapter folder."
    if continual is not None and not hasattr(continual, "stages"):
        from .continual import ContinualRun

        continual = ContinualRun(continual)
    demo = build_app(registry, presets, report_paths, composer, reason, settings, continual=continual)
    demo.hfcl_registry = registry
    return demo


def launch(demo, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           concurrency_limit: int = 2, block: bool = True, quiet: bool = False):
    """Queue (``concurrency_limit`` requests at once) and serve ``demo``; ``block=False`` returns at once (the
    server runs in a thread; ``demo.local_url`` is its address, ``demo.close()`` stops it)."""
    demo.queue(default_concurrency_limit=concurrency_limit, max_size=64)
    demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block, quiet=quiet,
                show_error=True, ssr_mode=False)
    return demo


def launch_space(models: str | Sequence[str] = DEFAULT_MODELS, *, host: str = "127.0.0.1", port: int | None = None,
                 share: bool = False, block: bool = True, settings: SpaceSettings | None = None, **build_kwargs: Any):
    """Build and serve the Space (see :func:`build_space` for the model arguments); returns the app."""
    settings = settings or SpaceSettings()
    demo = build_space(models, settings=settings, **build_kwargs)
    return launch(demo, host, port, share, settings.concurrency_limit, block)


def launch_demo_space(zoo_config: Any = None, forget_split: str = "forget10",
                      extra_models: Mapping[str, str] | None = None, **launch_kwargs: Any):
    """For ``hfcl demo --space``: serve the demo's models (``target``, ``retain`` and any ``extra_models``, e.g.
    ``{"unlearned": "hfcl-demo/unlearned"}``; at most 4 in all) on the demo's ``zoo_config``."""
    models = ["target", "retain", *[f"{name}={path}" for name, path in (extra_models or {}).items()]]
    return launch_space(models, zoo_config=zoo_config, forget_split=forget_split, **launch_kwargs)


def build_space_from_env(environ: Mapping[str, str] | None = None, **kwargs: Any):
    """The app as configured by Space variables: ``HFCL_MODELS`` (default ``target,retain``), ``HFCL_REPORTS``,
    ``HFCL_FORGET_SPLIT`` (default ``forget10``), ``HFCL_PRESET`` (``default`` or ``tiny``) and ``HFCL_CONTINUAL``
    (a Hub repo pushed with ``hfcl push --stages``, for the Continual tab)."""
    env = os.environ if environ is None else environ
    zoo_config = None
    if env.get("HFCL_PRESET", "default") == "tiny":
        from ..zoo import tiny_config

        zoo_config = tiny_config()
    return build_space(env.get("HFCL_MODELS") or DEFAULT_MODELS, zoo_config=zoo_config,
                       forget_split=env.get("HFCL_FORGET_SPLIT") or "forget10",
                       reports=env.get("HFCL_REPORTS") or None, continual=env.get("HFCL_CONTINUAL") or None,
                       **kwargs)
