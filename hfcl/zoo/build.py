"""Build-or-load of the embedded default models, and loading of any causal LM by id or path.

``model_path("target")`` returns the cached folder of the target model, building the tokenizer, ``base`` and
``target`` first if they are missing or corrupt. Each folder is a standard ``save_pretrained`` directory
(safetensors + tokenizer files) that ``AutoModelForCausalLM.from_pretrained`` loads without hfcl.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..data.tofu import check_forget_split
from ..errors import CacheError, ConfigError, ModelNotAvailableError
from ..utils.io import make_temp_dir, stable_hash
from ..utils.logging import get_logger, silence_known_noise
from ..utils.provenance import provenance
from . import cache, real
from .config import MODEL_STAGES, STAGES, ZOO_FORMAT, ZooConfig

logger = get_logger(__name__)


def _recipe(stage: str, cfg: ZooConfig, forget_split: str) -> dict[str, Any]:
    from ..data.world import WorldConfig

    everything = dataclasses.asdict(cfg)
    world = {f.name: everything[f.name] for f in dataclasses.fields(WorldConfig)}
    recipe: dict[str, Any] = {"format": ZOO_FORMAT, "world": world, "world_fingerprint": world_fingerprint(cfg),
                              "vocab_size": cfg.vocab_size}
    if stage == "tokenizer":
        return recipe
    arch = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "max_length", "train_seed", "batch_size")
    recipe.update({k: everything[k] for k in arch})
    recipe.update(base_epochs=cfg.base_epochs, base_lr=cfg.base_lr)
    if stage == "base":
        return recipe
    if stage == "base-v2":
        return {**recipe, "base_v2_epochs": cfg.base_v2_epochs}
    recipe.update(finetune_epochs=cfg.finetune_epochs, finetune_lr=cfg.finetune_lr,
                  utility_replay=cfg.utility_replay, passage_weight=cfg.passage_weight)
    if stage == "retain":
        recipe["forget_split"] = forget_split
    return recipe


def world_fingerprint(cfg: ZooConfig) -> str:
    """Hash of the generated world's content, so a change to the generator's code also invalidates the cache."""
    from ..data.world import WorldConfig

    return _world_fingerprint(tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(WorldConfig)))


@functools.lru_cache(maxsize=16)
def _world_fingerprint(world_items: tuple) -> str:
    from ..data.tofu import author_rows, get_world
    from ..data.world import WorldConfig, author_passage

    world = get_world(WorldConfig(**dict(world_items)))
    rows = author_rows(world, world.authors + world.holdout)
    return stable_hash({"rows": rows, "passages": [author_passage(world, a) for a in world.authors],
                        "countries": [dataclasses.asdict(c) for c in world.countries],
                        "real": [dataclasses.asdict(a) for a in world.real_authors]})


def stage_key(stage: str, cfg: ZooConfig | None = None, forget_split: str = "forget10") -> str:
    """Hash of everything ``stage``'s weights depend on."""
    return stable_hash({"stage": stage, **_recipe(stage, cfg or ZooConfig(), forget_split)})


def stage_name(stage: str, forget_split: str) -> str:
    return f"retain-{forget_split}" if stage == "retain" else stage


def _folder(stage: str, cfg: ZooConfig, forget_split: str) -> Path:
    return cache.entry_dir(stage_name(stage, forget_split), stage_key(stage, cfg, forget_split))


def model_path(stage: str, config: ZooConfig | None = None, forget_split: str = "forget10") -> Path:
    """Folder of ``stage`` ("tokenizer", "base", "base-v2", "target", "retain"), built if missing or corrupt; a real
    stage (``smollm2-135m``, see :mod:`hfcl.zoo.real`) is converted once from its GGUF instead."""
    if real.is_real_stage(stage):
        return real.model_path(stage)
    if stage not in STAGES:
        raise ModelNotAvailableError(f"Unknown zoo stage {stage!r}; choose one of {', '.join(STAGES)}.")
    check_forget_split(forget_split)
    cfg = config or ZooConfig()
    folder = _folder(stage, cfg, forget_split)
    if cache.is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder) + ".lock")
    try:
        lock.acquire(timeout=LOCK_NOTICE_AFTER)
    except Timeout:
        logger.warning("Waiting for another process building %s (%s); it is used as soon as it is ready.",
                       stage_name(stage, forget_split), folder)
        lock.acquire()
    try:
        if cache.is_complete(folder):  # another process built it while we waited
            return folder
        if folder.exists():
            cache.discard(folder, "incomplete or corrupt")
        if _launched_world_size() > 1:
            _build_outside_launch(stage, cfg, forget_split, folder)
        else:
            _build(stage, cfg, forget_split, folder)
    finally:
        lock.release()
    return folder


def _launched_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def _is_launch_variable(name: str) -> bool:
    return name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                    "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") or \
        name.startswith(("ACCELERATE_", "TORCHELASTIC_"))


def _build_outside_launch(stage: str, cfg: ZooConfig, forget_split: str, folder: Path) -> None:
    """Build in a fresh process without the launcher's variables: under ``accelerate launch`` the Trainer that
    trains a zoo stage would otherwise join the run's process group and wait forever for ranks that are waiting
    for this build (the first multi-process run on an empty cache hung before this)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_build_clean, args=(stage, cfg, forget_split, str(folder)))
    child.start()
    try:
        child.join()
    finally:
        if child.is_alive():  # interrupted: stop the build before the lock is released
            child.terminate()
            child.join()
    if child.exitcode != 0:
        raise CacheError(f"Building zoo stage {stage_name(stage, forget_split)} failed (exit code {child.exitcode}); "
                         "see the messages above.")


def _build_clean(stage: str, cfg: ZooConfig, forget_split: str, folder: str) -> None:
    for name in [n for n in os.environ if _is_launch_variable(n)]:
        del os.environ[name]
    silence_known_noise()
    _build(stage, cfg, forget_split, Path(folder))


#: Seconds to wait for the build lock before saying that another process holds it.
LOCK_NOTICE_AFTER = 1.0
#: Progress bar row of this process's builds (worker processes of :func:`build_zoo` get their own rows).
_BAR_POSITION = {"row": 0}


def _build(stage: str, cfg: ZooConfig, forget_split: str, folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    silence_known_noise()

    from .tokenizer import train_tokenizer
    from .train import new_model, qa_repeats, stage_dataset, tokenizer_corpus, train_stage

    started = time.perf_counter()
    tmp = make_temp_dir(folder.parent, prefix=f".{folder.name}.", suffix=".partial")
    try:
        metrics: dict[str, Any] = {}
        if stage == "tokenizer":
            logger.info("Training the embedded tokenizer (vocab %d).", cfg.vocab_size)
            train_tokenizer(tokenizer_corpus(cfg), cfg.vocab_size).save_pretrained(tmp)
        else:
            parent = {"base": "tokenizer", "base-v2": "base"}.get(stage, "base")
            parent_dir = model_path(parent, cfg, forget_split)
            tokenizer = AutoTokenizer.from_pretrained(model_path("tokenizer", cfg))
            if stage == "base":
                model, epochs, lr = new_model(tokenizer, cfg), cfg.base_epochs, cfg.base_lr
            else:
                model = AutoModelForCausalLM.from_pretrained(parent_dir)
                epochs, lr = ((cfg.base_v2_epochs, cfg.base_lr) if stage == "base-v2"
                              else (cfg.finetune_epochs / qa_repeats(cfg), cfg.finetune_lr))
            logger.info("Training zoo stage %s (%.1f epochs).", stage_name(stage, forget_split), epochs)
            data = stage_dataset(stage, tokenizer, cfg, forget_split)
            metrics = train_stage(model, tokenizer, data, cfg, epochs, lr,
                                  label=f"hfcl zoo: training {stage_name(stage, forget_split)}",
                                  position=_BAR_POSITION["row"])
            model.generation_config.pad_token_id = tokenizer.pad_token_id
            model.generation_config.eos_token_id = tokenizer.eos_token_id
            model.generation_config.bos_token_id = tokenizer.bos_token_id
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        cache.write_marker(tmp, {"stage": stage_name(stage, forget_split), "recipe": _recipe(stage, cfg, forget_split),
                                 "train_metrics": metrics, "build_seconds": round(time.perf_counter() - started, 2),
                                 "provenance": provenance()})
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Built %s in %.1fs -> %s", stage_name(stage, forget_split), time.perf_counter() - started, folder)


#: Stages that only depend on ``base`` (and the tokenizer), so they can train at the same time.
_SIBLINGS = ("target", "retain", "base-v2")


def build_zoo(config: ZooConfig | None = None, forget_split: str = "forget10",
              stages: Sequence[str] = ("tokenizer", "base", "target", "retain"), workers: int | None = None,
              ) -> dict[str, Path]:
    """Build (or find) ``stages`` and return their folders.

    Tokenizer and base build first; the stages that only need ``base`` (target, retain, base-v2) then train side
    by side in ``workers`` processes (default: one per CPU core, one thread each), which on a small model is
    close to twice as fast on 2 cores as training them one after the other with two threads each.
    """
    cfg = config or ZooConfig()
    unknown = [s for s in stages if s not in STAGES and not real.is_real_stage(s)]
    if unknown:
        choices = ", ".join(STAGES + tuple(real.REAL_STAGES))
        raise ConfigError(f"stages: unknown stage(s) {unknown}; choose from {choices}.")
    paths: dict[str, Path] = {}
    for stage in stages:
        if stage not in _SIBLINGS:
            paths[stage] = model_path(stage, cfg, forget_split)
    pending = [s for s in stages if s in _SIBLINGS and not cache.is_complete(_folder(s, cfg, forget_split))]
    workers = min(len(pending), workers or os.cpu_count() or 1)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        model_path("base", cfg, forget_split)
        threads = max(1, (os.cpu_count() or 1) // workers)
        logger.info("Training %s side by side in %d processes (%d thread(s) each).", ", ".join(pending), workers,
                    threads)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {s: pool.submit(_build_in_worker, s, cfg, forget_split, threads, row)
                       for row, s in enumerate(pending)}
            for stage, future in futures.items():
                future.result()
    for stage in stages:
        if stage in _SIBLINGS:
            paths[stage] = model_path(stage, cfg, forget_split)
    return {stage: paths[stage] for stage in stages}


def _build_in_worker(stage: str, cfg: ZooConfig, forget_split: str, threads: int, row: int = 0) -> str:
    import torch
    import transformers

    torch.set_num_threads(threads)
    silence_known_noise()
    transformers.logging.set_verbosity_error()
    _BAR_POSITION["row"] = row  # one progress bar row per side-by-side stage
    return str(model_path(stage, cfg, forget_split))


def load_tokenizer(name_or_path: str = "target", config: ZooConfig | None = None, **kwargs: Any):
    """Tokenizer of a zoo stage, a local folder or a Hub id."""
    from transformers import AutoTokenizer

    path = resolve(name_or_path, config, kwargs.pop("forget_split", "forget10"))
    return _from_pretrained(AutoTokenizer, path, **kwargs)


def load_model(name_or_path: str = "target", config: ZooConfig | None = None, forget_split: str = "forget10",
               **kwargs: Any):
    """``(model, tokenizer)`` for a zoo stage, a local folder (full model or PEFT adapter) or a Hub id.

    Stage names (``base``, ``base-v2``, ``target``, ``retain``) win over a folder of the same name; write
    ``./target`` for the folder. A PEFT adapter folder loads its base model, then the adapter; a ULD run folder
    loads as its :class:`~hfcl.unlearn.uld.LogitDifferenceModel`, an ECO/GuardFilter/GuardPrompt one as its
    :class:`~hfcl.unlearn.guard.GuardedModel`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..unlearn.guard import register as register_guard
    from ..unlearn.s3t import register as register_s3t
    from ..unlearn.uld import register

    register()
    register_guard()
    register_s3t()

    path = resolve(name_or_path, config, forget_split)
    path = _hub_adapter_snapshot(path, kwargs.get("revision")) or path
    adapter_cfg = Path(path) / "adapter_config.json"
    if adapter_cfg.is_file():
        import json

        from peft import PeftModel

        base_id = json.loads(adapter_cfg.read_text())["base_model_name_or_path"]
        base, tokenizer = load_model(base_id, config, forget_split, **kwargs)
        if (Path(path) / "tokenizer_config.json").is_file():
            tokenizer = AutoTokenizer.from_pretrained(path)
        model = PeftModel.from_pretrained(base, path)
        model.eval()
        return model, tokenizer
    model = _from_pretrained(AutoModelForCausalLM, path, **kwargs)
    tokenizer = _from_pretrained(AutoTokenizer, path)
    model.eval()
    return model, tokenizer


def _hub_adapter_snapshot(name: str, revision: str | None = None) -> str | None:
    """The local snapshot of Hub repo ``name`` if it is a PEFT adapter (so its base, which may be an embedded
    ``hfcl:<stage>@<hash>`` model, is loaded by :func:`load_model`); ``None`` for anything else or offline."""
    import re

    if os.path.exists(name) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name):
        return None
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        hf_hub_download(name, "adapter_config.json", revision=revision)
        return snapshot_download(name, revision=revision)
    except Exception:  # noqa: BLE001 - not an adapter repo, offline, or unreachable: from_pretrained explains
        return None


def resolve(name_or_path: str, config: ZooConfig | None = None, forget_split: str = "forget10") -> str:
    """Folder or Hub id to load for ``name_or_path`` (building a zoo stage if needed).

    Accepts zoo stage names, ``hfcl:<stage>@<recipe hash>`` references (what pushed files name embedded models
    by, see :func:`hfcl.zoo.cache.zoo_ref`), local folders and Hub ids.
    """
    if name_or_path in MODEL_STAGES or real.is_real_stage(name_or_path):
        return str(model_path(name_or_path, config, forget_split))
    if isinstance(name_or_path, str) and name_or_path.startswith("hfcl:"):
        return str(resolve_zoo_ref(name_or_path, config))
    return str(name_or_path)


def _split_stage_name(name: str) -> tuple[str, str]:
    """``("retain", "forget05")`` for ``retain-forget05``; ``(stage, "forget10")`` for the other stages."""
    if name.startswith("retain-"):
        return "retain", name.removeprefix("retain-")
    return name, "forget10"


def resolve_zoo_ref(ref: str, config: ZooConfig | None = None) -> Path:
    """The cache folder of an ``hfcl:<stage>[@<hash>]`` reference, built if this machine can rebuild it.

    Without a hash, the stage of ``config`` (default recipe) is meant. With one, the folder is used when it is in
    the cache; otherwise the stage is built from ``config``, the default or the tiny recipe, whichever has that hash.
    """
    from .config import tiny_config

    parsed = cache.parse_zoo_ref(ref.split("/", 1)[0])
    if parsed is None:
        raise ModelNotAvailableError(f"{ref!r} is not a zoo reference; write hfcl:<stage>@<hash>, e.g. hfcl:target.")
    name, key = parsed
    if real.is_real_stage(name):
        return real.resolve_ref(name, key)
    stage, forget_split = _split_stage_name(name)
    if stage not in STAGES:
        raise ModelNotAvailableError(f"{ref!r}: unknown zoo stage {stage!r}; choose one of {', '.join(STAGES)}.")
    if key is None:
        return model_path(stage, config, forget_split)
    folder = cache.entry_dir(name, key)
    if cache.is_complete(folder):
        return folder
    for cfg in (config, ZooConfig(), tiny_config()):
        if cfg is not None and stage_key(stage, cfg, forget_split) == key:
            return model_path(stage, cfg, forget_split)
    raise ModelNotAvailableError(
        f"{ref!r} names an embedded {stage} model built from a recipe this machine does not have (hash {key}; "
        f"the default recipe here gives {stage_key(stage, ZooConfig(), forget_split)}): it was built with other "
        "ZooConfig settings or another hfcl version. Build it with the same settings (`hfcl zoo ...`) or load "
        f"`hfcl:{name}` for this version's {stage}.")


def _from_pretrained(cls, path: str, **kwargs: Any):
    silence_known_noise()  # no "Loading weights" bar per model
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        if os.path.isdir(path):
            raise ModelNotAvailableError(f"Could not load {path!r} as a {cls.__name__}: {exc}") from exc
        raise ModelNotAvailableError(
            f"Could not load {path!r}: it is not a local folder and could not be fetched from the Hub "
            f"({type(exc).__name__}). Without network, use the embedded default (--model target, base, retain) "
            "or a local path to a saved model.") from exc
