"""One unlearning run end to end: load model and data, train, write a run directory atomically.

The run directory (DESIGN.md "One run directory") holds the PEFT adapter or the full model (safetensors), the
tokenizer, ``hfcl_run.json`` (command, full config, base model, data fingerprint, seed, versions, hardware, wall
time) and, for a cached reference, ``reference_logps.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputExistsError
from ..utils.io import atomic_directory, atomic_write_json, stable_hash
from ..utils.logging import get_logger
from .config import UnlearningConfig

logger = get_logger(__name__)


@dataclass
class UnlearnRunArgs:
    """What to unlearn from which model (the training recipe itself is :class:`UnlearningConfig`)."""

    model: str = field(default="target", metadata={
        "help": "Model to unlearn from: an embedded zoo stage ('target'), a local folder or a Hub id."})
    forget_split: str = field(default="forget10", metadata={"help": "TOFU-style forget split: forget01|05|10."})
    data_source: str = field(default="embedded", metadata={
        "help": "Where the forget/retain split comes from: 'embedded' (the fictitious world) or 'hub' (real TOFU)."})
    forget_file: str | None = field(default=None, metadata={
        "help": "Optional JSON/JSONL/CSV file of forget examples (question/answer, prompt/completion or messages); "
                "replaces the split's forget set."})
    retain_file: str | None = field(default=None, metadata={"help": "Optional file of retain examples."})
    lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (reference for free) instead of "
                                                        "all weights (--lora false)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "Comma-separated module names for LoRA, or 'all-linear'."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    preset: str | None = field(default=None, metadata={
        "help": "'demo': the recipe `hfcl demo` uses on the embedded models (NPO β=1 + GradDiff α=2, lr 2e-3, 12 "
                "epochs, constant schedule) for every option you leave at its default."})


def _world_config(model_dir: str | None):
    """The world a zoo model folder was trained on (from its ``hfcl_zoo.json``), else None (the default world)."""
    if model_dir is None or not (Path(model_dir) / "hfcl_zoo.json").is_file():
        return None
    from ..data.world import WorldConfig

    world = json.loads((Path(model_dir) / "hfcl_zoo.json").read_text()).get("recipe", {}).get("world")
    return WorldConfig(**world) if world else None


def _load_file(path: str):
    from datasets import load_dataset

    if not Path(path).is_file():
        raise ConfigError(f"Data file {path!r} does not exist.")
    kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(Path(path).suffix)
    if kind is None:
        raise ConfigError(f"Data file {path!r}: use .json, .jsonl, .csv or .parquet.")
    return load_dataset(kind, data_files=path, split="train")


def load_unlearning_data(run: UnlearnRunArgs, world_config=None):
    """``(forget, retain)`` datasets for ``run``."""
    from ..data import load_tofu

    splits = load_tofu(run.forget_split, source=run.data_source, world_config=world_config)
    forget = _load_file(run.forget_file) if run.forget_file else splits["forget"]
    retain = _load_file(run.retain_file) if run.retain_file else splits["retain"]
    return forget, retain


def lora_config(run: UnlearnRunArgs):
    from peft import LoraConfig

    targets = run.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=run.lora_r, lora_alpha=run.lora_alpha, target_modules=targets, lora_dropout=0.0,
                      task_type="CAUSAL_LM")


def unlearn(run: UnlearnRunArgs, config: UnlearningConfig, zoo_config=None, model=None, tokenizer=None) -> Path:
    """Run unlearning and write the run directory ``config.output_dir`` atomically; returns its path."""
    from ..zoo import load_model, resolve
    from .trainer import UnlearningTrainer

    out = Path(config.output_dir)
    if out.exists() and not run.overwrite:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists; pass --overwrite true or choose "
                                "another --output_dir.")
    if run.preset is not None:
        apply_preset(config, run.preset)
    # The run directory is pushed the hfcl way at the end (one commit, eval-ready card, safetensors only), so the
    # Trainer itself must not create a repo or push its generic card.
    push_repo = (config.hub_model_id or out.name) if config.push_to_hub else None
    config.push_to_hub = False
    start = time.time()
    model_dir = resolve(run.model, zoo_config, run.forget_split) if model is None else None
    if model is None:
        model, tokenizer = load_model(run.model, zoo_config, run.forget_split)
    forget, retain = load_unlearning_data(run, zoo_config or _world_config(model_dir))
    work = out.parent / f".{out.name}.checkpoints"
    config.output_dir = str(work)  # checkpoints (if any) live beside the final directory until it is complete
    trainer = UnlearningTrainer(model, config, forget, retain, processing_class=tokenizer,
                                peft_config=lora_config(run) if run.lora else None)
    result = trainer.train()
    config.output_dir = str(out)
    save_run_dir(out, trainer, tokenizer, run_record(run, config, trainer, forget, retain, model_dir,
                                                     time.time() - start, result.training_loss), run.overwrite)
    shutil.rmtree(work, ignore_errors=True)
    logger.info("Unlearned model written to %s", out)
    if push_repo:
        from ..hub import push_training_output

        result = push_training_output(config, out, repo_id=push_repo)
        logger.info("Pushed %s to %s (%d files, one commit)", out, result.repo_id, len(result.files))
    return out


def save_run_dir(out: Path, trainer, tokenizer, record: dict[str, Any], overwrite: bool) -> None:
    """Write the model or adapter, the tokenizer and ``hfcl_run.json`` to ``out`` atomically (temp dir, rename)."""
    with atomic_directory(out, overwrite=overwrite) as tmp:
        trainer.save_model(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        atomic_write_json(tmp / "hfcl_run.json", record)


def run_record(run: UnlearnRunArgs, config: UnlearningConfig, trainer, forget, retain, model_dir, seconds: float,
               loss: float) -> dict[str, Any]:
    """The ``hfcl_run.json`` payload."""
    from ..utils.provenance import provenance
    from .methods import get_method

    method = get_method(config.method)
    settings = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    settings.update(dataclasses.asdict(run), retain_loss=config.retain_kind, reference=trainer.reference_mode)
    return {
        "command": "unlearn",
        "method": method.name,
        "method_description": method.description,
        "config": settings,
        "base_model": {"id": run.model, "path": model_dir},
        "zoo": run.model in ("base", "base-v2", "target", "retain"),
        "forget_split": run.forget_split,
        "data_fingerprint": {"forget": stable_hash(_rows(forget)), "retain": stable_hash(_rows(retain))},
        "seed": config.seed,
        "wall_seconds": round(seconds, 2),
        "train_loss": loss,
        "provenance": provenance(),
    }


def _rows(dataset) -> list:
    return dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)


# The defaults `hfcl demo` uses: NPO + GradDiff with LoRA, a few seconds on the embedded target on 2 CPU cores.
# β=1 (not NPO's usual 0.1) saturates the forget term sooner, which keeps the tiny model's retain answers; α=2.
DEMO_SETTINGS: dict[str, Any] = dict(method="NPO", retain_loss="nll", beta=1.0, alpha=2.0, learning_rate=2e-3,
                                     num_train_epochs=12, per_device_train_batch_size=8,
                                     lr_scheduler_type="constant", logging_steps=5,
                                     report_to="none", disable_tqdm=True, save_strategy="no", seed=1)


def apply_preset(config: UnlearningConfig, preset: str) -> None:
    """Set the preset's values on every option of ``config`` still at its default."""
    if preset != "demo":
        raise ConfigError(f"Unknown preset {preset!r}; the only preset is 'demo'.")
    defaults = {f.name: f.default for f in dataclasses.fields(UnlearningConfig)}
    for key, value in DEMO_SETTINGS.items():
        if key not in ("method", "retain_loss") and getattr(config, key) == defaults.get(key):
            setattr(config, key, value)


def demo_unlearn(model, tokenizer, splits, output_dir, overwrite: bool = True, **overrides: Any):
    """Unlearn ``splits["forget"]`` (keeping ``splits["retain"]``) with NPO+GradDiff on a LoRA adapter.

    Writes the adapter run directory to ``output_dir`` and returns the unlearned model (in eval mode).
    """
    from .trainer import UnlearningTrainer

    out = Path(output_dir)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists.")
    config = UnlearningConfig(output_dir=str(out.parent / f".{out.name}.checkpoints"),
                              **{**DEMO_SETTINGS, **overrides})
    run = UnlearnRunArgs(model=str(getattr(model, "name_or_path", "target")), overwrite=overwrite)
    start = time.time()
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tokenizer,
                                peft_config=lora_config(run))
    result = trainer.train()
    save_run_dir(out, trainer, tokenizer, run_record(run, config, trainer, splits["forget"], splits["retain"],
                                                     run.model, time.time() - start, result.training_loss), overwrite)
    shutil.rmtree(config.output_dir, ignore_errors=True)
    trainer.model.eval()
    return trainer.model


__all__ = ["UnlearnRunArgs", "unlearn", "demo_unlearn", "load_unlearning_data", "lora_config", "DEMO_SETTINGS"]
