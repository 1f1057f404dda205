"""Python entry points: ``evaluate_model``, ``build_reference_log`` and model loading with provenance."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from datasets import DatasetDict

from ..errors import ConfigError, IncompatibleAdaptersError
from ..utils.io import sha256_file, stable_hash
from ..utils.logging import get_logger
from ..utils.provenance import library_versions, provenance
from .definitions import definitions_for
from .reference_log import MATCHED_SETTINGS, ReferenceLog, log_from_values
from .report import EvalReport
from .suites import RUNNERS, EvalConfig, data_fingerprint, prepare_data

logger = get_logger(__name__)
_EXTRA_LIBRARIES = ("numpy", "scipy", "scikit-learn", "rouge_score", "evaluate")
AUTO = "auto"
_REFERENCE_NOTE_PREFIXES = ("forget_quality is", "privleak is", "mia_reference_auc is")


# --- configs and data ----------------------------------------------------------------------------------------------
def split_world_config(world_config) -> tuple[Any, Any]:
    """``(WorldConfig for the data, ZooConfig for zoo stages or None)`` from a WorldConfig, a ZooConfig or None."""
    if world_config is None:
        return None, None
    if hasattr(world_config, "world_config"):  # a ZooConfig: the recipe of the models and their world
        return world_config.world_config(), world_config
    return world_config, None


def load_suite_data(config: EvalConfig, world_config=None) -> DatasetDict:
    """The raw splits of ``config.suite`` (TOFU schema or MUSE schema) from ``config.data_source``."""
    from ..data import load_muse, load_tofu

    world, _ = split_world_config(world_config)
    if config.suite == "muse":
        return load_muse(config.forget_split, source=config.data_source, world_config=world)
    if config.suite == "rwku":
        from ..data.rwku import load_rwku

        return load_rwku(config.forget_target, source=config.data_source)
    return load_tofu(config.forget_split, source=config.data_source, world_config=world)


# --- models --------------------------------------------------------------------------------------------------------
def _dir_revision(path: Path) -> str | None:
    for name in ("adapter_model.safetensors", "model.safetensors", "adapter_model.bin", "pytorch_model.bin"):
        if (path / name).is_file():
            return "sha256:" + sha256_file(path / name)[:16]
    return None


def load_for_eval(model_or_path, adapter: str | None = None, tokenizer=None, zoo_config=None,
                  forget_split: str = "forget10") -> tuple[Any, Any, dict[str, Any]]:
    """``(model, tokenizer, identity)`` for a zoo stage, local folder (full model or PEFT adapter), Hub id, a loaded
    model (with ``tokenizer``) or a ``(model, tokenizer)`` pair; ``adapter`` is applied on top if given."""
    identity: dict[str, Any] = {"id": None, "path": None, "revision": None, "adapter_id": None,
                                "adapter_revision": None}
    if isinstance(model_or_path, tuple):
        model_or_path, tokenizer = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        from ..zoo import load_model, resolve
        from ..zoo.build import MODEL_STAGES

        name = str(model_or_path)
        model, loaded_tokenizer = load_model(name, config=zoo_config, forget_split=forget_split)
        tokenizer = tokenizer or loaded_tokenizer
        path = Path(resolve(name, zoo_config, forget_split))
        identity.update(id=name, path=str(path) if path.exists() else None)
        if name in MODEL_STAGES:
            identity["revision"] = "zoo:" + path.name
        elif path.is_dir():
            if (path / "hfcl_run.json").is_file():  # an hfcl run directory: link the report to what produced it
                try:
                    command = json.loads((path / "hfcl_run.json").read_text(encoding="utf-8")).get("command")
                except (ValueError, AttributeError):
                    command = None
                identity["run"] = {"command": command, "sha256": sha256_file(path / "hfcl_run.json")}
            if (path / "adapter_config.json").is_file():
                base = json.loads((path / "adapter_config.json").read_text())["base_model_name_or_path"]
                identity.update(id=base, path=None, adapter_id=name, adapter_revision=_dir_revision(path))
            else:
                identity["revision"] = _dir_revision(path)
        else:
            identity["revision"] = getattr(model.config, "_commit_hash", None)
    else:
        model = model_or_path
        if tokenizer is None:
            raise ConfigError("Pass tokenizer=... with a loaded model (or a (model, tokenizer) pair).")
        identity["id"] = getattr(model, "name_or_path", None) or type(model).__name__
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise ConfigError(f"adapter={adapter!r} is not a PEFT adapter folder (no adapter_config.json).")
        model = PeftModel.from_pretrained(model, adapter)
        identity.update(adapter_id=str(adapter), adapter_revision=_dir_revision(Path(adapter)))
    model.eval()
    return model, tokenizer, identity


def check_adapter_base(model, adapter, zoo_config=None, forget_split: str = "forget10",
                       force: bool = False) -> str | None:
    """Refuse to evaluate ``adapter`` on ``model`` when the adapter records another base (before any work).

    The recorded base is read from the adapter's ``adapter_config.json`` (a folder, a Hub id or
    ``hfcl:<stage>@<hash>``) or its ``hfcl_run.json``; a base that cannot be identified here is fine (no verdict).
    With ``force`` a mismatch is logged as a warning and returned instead of raised. Returns ``None`` otherwise.
    """
    if not adapter or not isinstance(model, (str, os.PathLike)):
        return None
    if (Path(model) / "adapter_config.json").is_file():  # --model is itself an adapter: its base is its own
        return None
    from ..utils.recorded_base import adapter_base, base_identity, display_name, same_base

    recorded = adapter_base(adapter, zoo_config, forget_split)
    if recorded is None:
        return None
    name, identity = recorded
    model_identity = base_identity(str(model), zoo_config, forget_split)
    if same_base(identity, model_identity) is not False:
        return None
    fix = display_name(identity, name, zoo_config, forget_split)
    message = (f"--adapter {str(adapter)!r} was trained on {name!r}, but --model is {str(model)!r} "
               f"({display_name(model_identity, str(model))}): its scores there would describe neither model. "
               f"Pass --model {fix} (Python: model_or_path={fix!r}), or --force (force=True) if the two are the "
               "same model under different names.")
    if not force:
        raise IncompatibleAdaptersError(message)
    logger.warning("Evaluating anyway because of --force: %s", message)
    return message


# --- reference logs ------------------------------------------------------------------------------------------------
def reference_log_from_report(report: EvalReport) -> ReferenceLog:
    """The reference log of a report computed on the retain model (without a reference log of its own)."""
    return log_from_values(report.suite, report.data["forget_split"], report.data["fingerprint"], report.settings,
                           report.model, report.per_example, report.aggregates)


def build_reference_log(retain_model="retain", suite: str = "tofu", forget_split: str = "forget10",
                        world_config=None, path: str | os.PathLike | None = None, **kwargs: Any) -> ReferenceLog:
    """Evaluate ``retain_model`` (zoo stage, path, Hub id or loaded model) and return its reference log, saved to
    ``path`` if given. ``kwargs`` go to :func:`evaluate_model` (``config``, ``tokenizer``, ``splits``, ...)."""
    report = evaluate_model(retain_model, suite, forget_split, world_config, reference_log=None, **kwargs)
    log = reference_log_from_report(report)
    if path is not None:
        log.save(path)
    return log


def zoo_reference_path(config: EvalConfig, world_config=None) -> tuple[Path, str]:
    """``(cache file, data fingerprint)`` of the embedded retain model's reference log for ``config``."""
    from ..zoo import cache_root, model_path

    _, zoo_cfg = split_world_config(world_config)
    if config.data_source != "embedded":
        raise ConfigError("reference_log='auto' uses the embedded retain model and so needs data_source='embedded'; "
                          "pass a reference log file built on your data instead.")
    data = prepare_data(load_suite_data(config, world_config), config)
    fingerprint = data_fingerprint(data, config.suite)
    retain = model_path("retain", zoo_cfg, config.forget_split)
    settings = {k: v for k, v in config.to_dict().items() if k in MATCHED_SETTINGS}
    key = stable_hash({"model": retain.name, "data": fingerprint, **settings})
    return cache_root() / "eval" / f"reference-{config.suite}-{config.forget_split}-{key}.json", fingerprint


def cached_zoo_reference_log(config: EvalConfig, world_config=None) -> ReferenceLog | None:
    """The cached embedded retain model's reference log for ``config``, or ``None`` if none (valid) is cached."""
    path, fingerprint = zoo_reference_path(config, world_config)
    if not path.is_file():
        return None
    try:
        log = ReferenceLog.load(path)
        log.check_compatible(fingerprint, config.to_dict())
        return log
    except Exception as exc:  # a stale or corrupt cache entry is rebuilt, never trusted
        logger.warning("Ignoring cached reference log %s (%s).", path, exc)
        return None


def zoo_reference_log(config: EvalConfig, world_config=None, distributed: bool = True) -> ReferenceLog:
    """The embedded retain model's reference log for ``config``, built once and cached next to the zoo models."""
    log = cached_zoo_reference_log(config, world_config)
    if log is not None:
        return log
    path, _ = zoo_reference_path(config, world_config)
    logger.info("Building the retain model's reference log -> %s", path)
    return build_reference_log("retain", config.suite, config.forget_split, world_config, path=path, config=config,
                               distributed=distributed)


def resolve_reference(reference_log, config: EvalConfig, fingerprint: str, world_config=None,
                      distributed: bool = True) -> ReferenceLog | None:
    """A :class:`ReferenceLog` (checked against this run's data and settings) from a log, a path, 'auto' or None."""
    if reference_log is None:
        return None
    if isinstance(reference_log, ReferenceLog):
        log = reference_log
    elif str(reference_log) == AUTO:
        log = zoo_reference_log(config, world_config, distributed)
    else:
        log = ReferenceLog.load(reference_log)
    log.check_compatible(fingerprint, config.to_dict())
    return log


# --- evaluation ----------------------------------------------------------------------------------------------------
def library_versions_for_report() -> dict[str, str]:
    """The stack's versions plus the libraries the metrics are computed with."""
    return library_versions(_EXTRA_LIBRARIES)


def evaluate_model(model_or_path, suite: str = "tofu", forget_split: str = "forget10", world_config=None,
                   reference_log=None, *, adapter: str | None = None, tokenizer=None, config: EvalConfig | None = None,
                   splits: DatasetDict | None = None, distributed: bool = True, force: bool = False,
                   **overrides: Any) -> EvalReport:
    """Evaluate a model on the ``tofu`` or ``muse`` suite and return an :class:`EvalReport`.

    ``model_or_path``: a zoo stage (``"target"``, ``"retain"``, ``"base"``), a local folder (full model or PEFT
    adapter), a Hub id, a loaded model (with ``tokenizer``) or a ``(model, tokenizer)`` pair. ``world_config``: the
    :class:`~hfcl.zoo.ZooConfig` (or plain ``WorldConfig``) of the embedded world. ``reference_log``: a
    :class:`ReferenceLog`, a path to one, ``"auto"`` (the embedded retain model's, built once and cached) or
    ``None`` (then forget quality and PrivLeak are ``None`` and the report's notes say why). ``splits`` replaces the
    loaded data (same schema). ``adapter`` recording another base than ``model_or_path`` is an
    :class:`~hfcl.errors.IncompatibleAdaptersError` unless ``force`` (see :func:`check_adapter_base`). Extra keyword
    arguments are :class:`EvalConfig` fields.

    Under ``accelerate launch`` every process must call this; sequences are shared between processes and every
    process returns the same report.
    """
    if config is None:
        try:
            config = EvalConfig(suite=suite, forget_split=forget_split, **overrides)
        except TypeError as exc:
            raise ConfigError(f"Unknown evaluation option: {exc}") from exc
    elif overrides:
        raise ConfigError(f"Pass either config=... or options, not both (got {sorted(overrides)}).")
    elif (suite, forget_split) not in (("tofu", "forget10"), (config.suite, config.forget_split)):
        raise ConfigError(f"suite={suite!r} / forget_split={forget_split!r} disagree with config ({config.suite!r}, "
                          f"{config.forget_split!r}); set them in the config only.")
    from ..data.tofu import check_forget_split

    check_forget_split(config.forget_split)
    world, zoo_cfg = split_world_config(world_config)
    check_adapter_base(model_or_path, adapter, zoo_cfg, config.forget_split, force=force)
    data = prepare_data(splits if splits is not None else load_suite_data(config, world_config), config)
    fingerprint = data_fingerprint(data, config.suite)
    model, tokenizer, identity = load_for_eval(model_or_path, adapter, tokenizer, zoo_cfg, config.forget_split)
    reference = resolve_reference(reference_log, config, fingerprint, world_config, distributed)

    import torch

    torch.manual_seed(config.seed)
    started = time.perf_counter()
    result = RUNNERS[config.suite](model, tokenizer, data, config, distributed=distributed)
    if config.attacks:
        from .attacks import run_attacks

        attacked, attack_notes, attack_record = run_attacks(model, tokenizer, list(data["forget"]), config)
        result.aggregates.update(attacked)
        result.notes.extend(attack_notes)
        result.stats["attacks"] = attack_record
    seconds = time.perf_counter() - started
    from .scoring import process_info

    _, num_processes = process_info(distributed)
    info = provenance()
    report = EvalReport(
        suite=config.suite,
        aggregates=result.aggregates,
        per_example=result.per_example,
        definitions={},
        model=identity,
        data={"source": config.data_source, "forget_split": config.forget_split, "fingerprint": fingerprint,
              "sizes": {k: len(v) for k, v in data.items()},
              "world_config": world.to_dict() if world is not None and splits is None else None,
              **({"forget_target": config.forget_target} if config.suite == "rwku" else {})},
        seed=config.seed,
        settings=config.to_dict(),
        notes=result.notes,
        provenance={"versions": library_versions_for_report(), "hardware": info["hardware"],
                    "created_at": info["created_at"]},
        runtime={"seconds": round(seconds, 3), "num_processes": num_processes, **result.stats},
    )
    return with_reference(report, reference, check=False)


def with_reference(report: EvalReport, reference_log, check: bool = True) -> EvalReport:
    """``report`` with its retain-model comparisons (``forget_quality``, ``privleak``, ``mia_reference_auc``)
    computed against ``reference_log`` (a :class:`ReferenceLog`, a path, or ``None`` to clear them, with notes).

    Pure: it only reads the report's per-example values, so a report can be compared with a reference log after the
    fact without running the model again. ``check`` verifies the log's data fingerprint and settings.
    """
    import dataclasses

    from .suites import apply_reference

    log = reference_log if reference_log is None or isinstance(reference_log, ReferenceLog) else \
        ReferenceLog.load(reference_log)
    if log is not None and check:
        log.check_compatible(report.data.get("fingerprint"), report.settings)
    from .metrics.registry import metrics_for

    reference_notes = _REFERENCE_NOTE_PREFIXES + tuple(f"{m.name} is " for m in metrics_for(report.suite, "reference"))
    own_notes = [n for n in report.notes if not n.startswith(reference_notes)]
    aggregates, per_example, notes = apply_reference(report.suite, report.aggregates, report.per_example, log)
    return dataclasses.replace(
        report, aggregates=aggregates, per_example=per_example, definitions=definitions_for(aggregates),
        notes=own_notes + notes,
        reference_log=None if log is None else {"fingerprint": log.fingerprint, "path": log.path, "model": log.model})
