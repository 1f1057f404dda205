"""One unlearning run end to end: load model and data, train, write a run directory atomically.

The run directory (DESIGN.md "One run directory") holds the PEFT adapter or the full model (safetensors), the
tokenizer, ``hfcl_run.json`` (command, full config, base model, data fingerprint, seed, versions, hardware, wall
time) and, for a cached reference, ``reference_logps.safetensors``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError, OutputExistsError
from ..utils.distributed import is_main_process
from ..utils.io import atomic_write_json, shared_atomic_directory, stable_hash
from ..utils.logging import get_logger
from .config import UnlearningConfig, explicit_options, rebuild, respect_explicit
from .methods import get_method

logger = get_logger(__name__)


@dataclass
class UnlearnRunArgs:
    """What to unlearn from which model (the training recipe itself is :class:`UnlearningConfig`)."""

    model: str = field(default="target", metadata={
        "help": "Model to unlearn from: an embedded zoo stage ('target'), a local folder or a Hub id."})
    forget_split: str = field(default="forget10", metadata={"help": "TOFU-style forget split: forget01|05|10."})
    zoo: str = field(default="default", metadata={
        "help": "Embedded zoo recipe for zoo stage names and the embedded world: 'default' or 'tiny' (tests)."})
    data_source: str = field(default="embedded", metadata={
        "help": "Where the forget/retain split comes from: 'embedded' (the fictitious world), 'hub' (real TOFU) or "
                "'rwku' (real-world knowledge: forget --forget_target from a real model such as smollm2-135m)."})
    forget_target: str = field(default="William Shakespeare", metadata={
        "help": "--data_source rwku: the entity to forget (one of hfcl.data.rwku.TARGETS); its description is the "
                "forget set, the other targets' descriptions the retain set."})
    forget_file: str | None = field(default=None, metadata={
        "help": "Optional JSON/JSONL/CSV file of forget examples (question/answer, prompt/completion or messages); "
                "replaces the split's forget set."})
    retain_file: str | None = field(default=None, metadata={"help": "Optional file of retain examples."})
    holdout_file: str | None = field(default=None, metadata={
        "help": "File of holdout examples (same kind as the forget set, never trained on) for --early_stop_steps; "
                "default: the embedded holdout split."})
    lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter (reference for free) instead of "
                                                        "all weights (--lora false)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha."})
    lora_target_modules: str = field(default="all-linear", metadata={
        "help": "Comma-separated module names for LoRA, or 'all-linear'."})
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    forget_check: bool = field(default=True, metadata={
        "help": "Measure forget ROUGE-L and forget answer probability before and after training (one batched "
                "scoring and generation pass each) and print them; warn when nothing moved."})


def zoo_recipe(name: str):
    """The :class:`~hfcl.zoo.ZooConfig` of ``--zoo NAME``: 'default' or 'tiny'."""
    from ..zoo import ZooConfig, tiny_config

    if name not in ("default", "tiny"):
        raise ConfigError(f"--zoo {name!r}: use 'default' or 'tiny'.")
    return tiny_config() if name == "tiny" else ZooConfig()


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
    if kind != "parquet" and not Path(path).read_bytes().strip():
        raise DataError(f"Data file {path!r} is empty; it needs at least one example (one JSON object per line "
                        "for .jsonl, with question/answer, prompt/completion or messages).")
    try:
        dataset = load_dataset(kind, data_files=path, split="train")
    except Exception as exc:  # datasets raises many types (and StopIteration) for unreadable files
        raise DataError(f"Data file {path!r} could not be read as {kind}: {type(exc).__name__}: {exc}") from exc
    if len(dataset) == 0:
        raise DataError(f"Data file {path!r} holds no examples.")
    return dataset


def load_unlearning_data(run: UnlearnRunArgs, world_config=None):
    """``(forget, retain)`` datasets for ``run``."""
    from ..data import load_tofu

    forget = _load_file(run.forget_file) if run.forget_file else None
    retain = _load_file(run.retain_file) if run.retain_file else None
    if (forget is None or retain is None) and run.data_source == "rwku":
        from ..data.rwku import load_rwku

        splits = load_rwku(run.forget_target)
        forget = splits["forget"] if forget is None else forget
        retain = splits["retain"] if retain is None else retain
    if forget is None or retain is None:
        splits = load_tofu(run.forget_split, source=run.data_source, world_config=world_config)
        forget = splits["forget"] if forget is None else forget
        retain = splits["retain"] if retain is None else retain
    return forget, retain


def load_holdout(run: UnlearnRunArgs, world_config=None, config: UnlearningConfig | None = None):
    """Holdout rows for early stopping: ``--holdout_file``, else the embedded (or Hub) split's holdout set; a user
    forget file without a holdout file is an error (the embedded authors are not its kind of data)."""
    from ..data import load_tofu

    if run.holdout_file:
        return _load_file(run.holdout_file)
    if (run.forget_file or run.data_source == "rwku") and config is not None and get_method(config.method).name == "ECO" \
            and not config.early_stop_steps:
        given = "--forget_file" if run.forget_file else "--data_source rwku"
        raise ConfigError(f"ECO with {given} fits σ so the forget rows' answer probability reaches that of holdout "
                          "rows (the same kind of data, never seen by the model): pass --holdout_file, or "
                          "--eco_target PROB / --eco_sigma SIGMA.")
    if run.forget_file or run.data_source == "rwku":
        steps = config.early_stop_steps if config is not None else "N"
        why = " (the preset sets it)" if "early_stop_steps" in getattr(config, "preset_values", {}) else ""
        given = "--forget_file" if run.forget_file else "--data_source rwku"
        raise ConfigError(f"--early_stop_steps {steps}{why} with {given} needs --holdout_file: rows of the same kind "
                          "as the forget set that the model never saw; or pass --early_stop_steps 0 and a fixed "
                          "--num_train_epochs.")
    return load_tofu(run.forget_split, source=run.data_source, world_config=world_config)["holdout"]


def _needs_holdout(config: UnlearningConfig) -> bool:
    """Early stopping scores holdout rows; WHP takes its counterfactual names from them unless --whp_names is given;
    ECO's σ search aims at their answer probability unless --eco_target or --eco_sigma is given."""
    method = get_method(config.method)
    return (bool(config.early_stop_steps) or (method.needs_teacher and not config.whp_names)
            or (method.name == "ECO" and config.eco_target is None and config.eco_sigma is None))


def _uld_lora() -> dict[str, Any]:
    """ULD's published assistant adapter (:data:`hfcl.unlearn.uld.ASSISTANT_LORA`) in UnlearnRunArgs' names."""
    from .uld import ASSISTANT_LORA

    return {"lora_r": ASSISTANT_LORA["r"], "lora_alpha": ASSISTANT_LORA["lora_alpha"],
            "lora_target_modules": ASSISTANT_LORA["target_modules"]}


def check_whp_run(run: UnlearnRunArgs, config: UnlearningConfig) -> None:
    """Refuse, before any model is loaded, a WHP run whose rows name no entity or that has no names to swap in."""
    if run.data_source != "embedded" and not run.forget_file:
        raise ConfigError(f"--method {config.method} replaces each forget row's entity (the "
                          f"{config.whp_entity_field!r} column) by a never-seen name, and --data_source "
                          f"{run.data_source} rows name none: use --forget_file with a column naming each row's "
                          "entity (--whp_entity_field) and --whp_names.")
    if run.forget_file and not config.whp_names and not run.holdout_file:
        raise ConfigError(f"--method {config.method} swaps each forget row's entity ({config.whp_entity_field!r}) for "
                          "names the model never learned: pass them with --whp_names 'Name A,Name B,...' or give "
                          "--holdout_file (rows about such entities).")


def method_adapter(run: UnlearnRunArgs, method: str | None) -> UnlearnRunArgs:
    """``run`` with ULD's published adapter (:func:`_uld_lora`) in every LoRA option the user did not set (on the
    command line, in the YAML, or as a keyword that differs from the default); other methods: ``run`` itself."""
    from ..config import given_fields

    exact = method is not None and get_method(method).exact
    if exact:
        run = _s3t_start(run)
    elif method != "ULD":
        return run
    defaults = {f.name: f.default for f in dataclasses.fields(run)}
    if exact:
        from .s3t import SLICE_LORA as adapter  # S3T's slice adapter in every LoRA option left unset
    else:
        adapter = _uld_lora()
    unset = {k: v for k, v in adapter.items() if k not in given_fields(run) and getattr(run, k) == defaults[k]}
    return dataclasses.replace(run, **unset) if unset else run


def s3t_training_rows(run: UnlearnRunArgs, retain, world_config=None):
    """S3T's never-deleted rows: the retain set, and on the embedded world (no --retain_file) also its world-facts
    and famous-author rows, the utility data the target's own fine-tuning mixed in."""
    if run.data_source != "embedded" or run.retain_file:
        return retain
    from ..data import load_tofu

    splits = load_tofu(run.forget_split, world_config=world_config)
    return [*retain, *splits["world_facts"], *splits["real_authors"]]


def _s3t_start(run: UnlearnRunArgs) -> UnlearnRunArgs:
    """S3T trains its ensemble from the pretrained model: on the embedded default the zoo's ``base`` (the target's
    own starting point) unless ``--model`` names another; the fine-tuned ``target`` is refused."""
    from ..config import given_fields

    if not run.lora:
        raise ConfigError("S3T's slices are LoRA adapters: --lora false does not apply (set --lora_r, --lora_alpha "
                          "and --lora_target_modules instead).")
    if run.model == "target":
        if "model" in given_fields(run):
            raise ConfigError("--method S3T trains its own sliced ensemble from a pretrained model, so --model must "
                              "be one (the embedded 'base', a folder or a Hub id), not the fine-tuned 'target'.")
        from ..config import copy_given_fields

        swapped = dataclasses.replace(run, model="base")
        copy_given_fields(run, swapped)
        return swapped
    return run


def lora_config(run: UnlearnRunArgs, method: str | None = None):
    """The run's LoRA config (for ULD, :func:`method_adapter`'s; None for an inference-time guard, which trains
    no weights)."""
    from peft import LoraConfig

    if method is not None and get_method(method).guard:
        return None
    run = method_adapter(run, method)
    targets = run.lora_target_modules
    targets = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=run.lora_r, lora_alpha=run.lora_alpha, target_modules=targets, lora_dropout=0.0,
                      task_type="CAUSAL_LM")


def unlearn(run: UnlearnRunArgs, config: UnlearningConfig, zoo_config=None, model=None, tokenizer=None) -> Path:
    """Run unlearning and write the run directory ``config.output_dir`` atomically; returns its path.

    ``config`` is not changed (the run works on a copy). On an embedded zoo model with neither ``preset`` nor
    ``learning_rate`` given, the method's ``demo`` preset is used and a log line says so. Checkpoints (if
    ``save_strategy`` asks for them) live in ``.<name>.checkpoints`` beside the output until the run succeeds; a
    failed run keeps them there (and only then), and ``resume_from_checkpoint`` (a checkpoint folder, or ``last``)
    continues from them.
    """
    from ..zoo import load_model, resolve
    from .trainer import UnlearningTrainer, quiet_console

    if get_method(config.method).exact:
        run = _s3t_start(run)  # S3T trains from the pretrained model: the recipe message names that one
    config = _run_recipe(run, config, model)
    run = method_adapter(recipe_adapter(run, config), config.method)  # what hfcl_run.json records is what trains
    if run.forget_file and _needs_holdout(config) and not run.holdout_file and not get_method(config.method).needs_teacher:
        load_holdout(run, None, config)  # the error, before any model is loaded
    if get_method(config.method).needs_teacher:
        check_whp_run(run, config)
    check_rwku_run(run, config, model)
    if zoo_config is None and model is None and run.zoo != "default":
        zoo_config = zoo_recipe(run.zoo)
    elif run.zoo not in ("default", "tiny"):
        zoo_recipe(run.zoo)  # the error
    out = Path(config.output_dir)
    work = out.parent / f".{out.name}.checkpoints"
    resume = resume_point(config.resume_from_checkpoint, work)
    if out.exists() and not run.overwrite:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists; pass --overwrite true or choose "
                                "another --output_dir.")
    # The run directory is pushed the hfcl way at the end (one commit, eval-ready card, safetensors only), so the
    # Trainer itself must not create a repo or push its generic card.
    push_repo = (config.hub_model_id or out.name) if config.push_to_hub else None
    config.push_to_hub = False
    start = time.time()
    model_dir = resolve(run.model, zoo_config, run.forget_split) if model is None else None
    if model is None:
        model, tokenizer = load_model(run.model, zoo_config, run.forget_split)
    forget, retain = load_unlearning_data(run, zoo_config or _world_config(model_dir))
    if get_method(config.method).exact:
        retain = s3t_training_rows(run, retain, zoo_config or _world_config(model_dir))
    holdout = (load_holdout(run, zoo_config or _world_config(model_dir), config) if _needs_holdout(config)
               else None)
    before = _measure(run, config, model, tokenizer, forget)
    config.output_dir = str(work)  # checkpoints (if any) live beside the final directory until it is complete
    try:
        trainer = UnlearningTrainer(model, config, forget, retain, processing_class=tokenizer,
                                    peft_config=lora_config(run, config.method) if run.lora else None,
                                    holdout_dataset=holdout)
        quiet_console(trainer)  # a progress bar, not {'loss': ...} / {'train_runtime': ...} dicts
        trainer.s3t_keep_trained = run.forget_check
        result = trainer.train(resume_from_checkpoint=resume)
    except BaseException:
        if is_main_process():
            _keep_only_checkpoints(work)
        raise
    config.output_dir = str(out)
    if trainer.s3t_trained is not None:  # S3T: "before" is the ensemble it trained, not the pretrained model
        before = _measure(run, config, trainer.s3t_trained, tokenizer, forget)
        trainer.s3t_trained = None
    after = _measure(run, config, trainer.unlearned_model(), tokenizer, forget)
    record = run_record(run, config, trainer, forget, retain, model_dir, time.time() - start, result.training_loss)
    record["forget_check"] = _report_objective(before, after, config.method)
    record["log_history"] = trainer.state.log_history
    if trainer.guard_record is not None:
        record["guard"] = trainer.guard_record
    if trainer.s3t_record is not None:
        record["s3t"] = trainer.s3t_record
        _report_s3t(trainer.s3t_record)
    if trainer.membership_stop is not None:
        record["early_stop"] = trainer.membership_stop.summary()
        _report_stop(record["early_stop"], config)
    save_run_dir(out, trainer, tokenizer, record, run.overwrite)
    if not is_main_process():
        return out  # the main process removes the work folder and pushes; out is complete here already
    shutil.rmtree(work, ignore_errors=True)
    logger.info("Unlearned model written to %s", out)
    if push_repo:
        from ..hub import push_training_output

        result = push_training_output(config, out, repo_id=push_repo)
        logger.info("Pushed %s to %s (%d files, one commit)", out, result.repo_id, len(result.files))
    return out


def _is_zoo_stage(name: str) -> bool:
    from ..zoo.build import MODEL_STAGES

    return name in MODEL_STAGES


def _is_embedded(name: str) -> bool:
    """A zoo stage name or a zoo model folder (one with ``hfcl_zoo.json``)."""
    return _is_zoo_stage(name) or (Path(name) / "hfcl_zoo.json").is_file()


def _run_recipe(run: UnlearnRunArgs, config: UnlearningConfig, model) -> UnlearningConfig:
    """A copy of ``config``, with the method's demo preset when an embedded model gets no preset and no rate."""
    config = respect_explicit(copy.deepcopy(config))  # a preset never overwrites an option the user gave
    default_lr = next(f.default for f in dataclasses.fields(UnlearningConfig) if f.name == "learning_rate")
    explicit = explicit_options(config)
    lr_given = "learning_rate" in explicit if explicit is not None else config.learning_rate != default_lr
    if (config.preset is None and model is None and _is_embedded(run.model)
            and not lr_given and get_method(config.method).presets.get("demo")):
        config = (rebuild(config, explicit, preset="demo") if explicit is not None
                  else dataclasses.replace(config, preset="demo"))
        logger.warning("No --preset or --learning_rate given for the embedded model %r: using %s's demo recipe "
                       "(%s), since lr %g for %g epochs leaves a model this small unchanged. Pass --preset none to "
                       "keep the plain defaults.", run.model, config.method,
                       ", ".join(f"{k}={v}" for k, v in config.preset_values.items()), default_lr,
                       UnlearningConfig.num_train_epochs)
    if run.data_source == "rwku" and config.preset == "demo" and "rwku" in get_method(config.method).presets:
        config = (rebuild(config, explicit, preset="rwku") if explicit is not None
                  else dataclasses.replace(config, preset="rwku"))
        logger.info("--data_source rwku: %s's demo recipe for a real model is its rwku preset (%s).", config.method,
                    ", ".join(f"{k}={v}" for k, v in config.preset_values.items()))
    return config


def check_rwku_run(run: UnlearnRunArgs, config: UnlearningConfig, model=None) -> None:
    """Refuse, before any work, what ``--data_source rwku`` cannot do: early stopping without ``--holdout_file``
    and the embedded toy models (they never learned real-world facts); warn when the method has no rwku recipe."""
    if run.data_source != "rwku":
        return
    if config.early_stop_steps and not run.holdout_file:
        load_holdout(run, None, config)  # the error
    if model is None and _is_embedded(run.model):
        raise ConfigError(f"--data_source rwku forgets real-world knowledge, which the embedded model {run.model!r} "
                          "never learned: pass a real model, e.g. --model smollm2-135m.")
    if config.preset in ("demo", "rwku") and "rwku" not in get_method(config.method).presets:
        logger.warning("%s has no rwku recipe yet: its demo recipe was made for the embedded 1.2M-parameter model "
                       "and may wreck a real one; set --learning_rate and --num_train_epochs.", config.method)


def recipe_adapter(run: UnlearnRunArgs, config: UnlearningConfig) -> UnlearnRunArgs:
    """``run`` with ``lora=False`` when the preset was searched for all weights and ``--lora`` was not given."""
    from ..config import copy_given_fields, given_fields, has_given_fields
    from .methods import FULL_WEIGHT_PRESETS

    if config.preset not in FULL_WEIGHT_PRESETS or not run.lora:
        return run
    if has_given_fields(run) and "lora" in given_fields(run):
        logger.warning("--preset %s was searched for training all weights; with --lora true its learning rate may "
                       "leave the adapter short of forgetting.", config.preset)
        return run
    logger.info("--preset %s trains all weights (its recipe was searched that way): --lora false. Pass --lora true "
                "to train an adapter instead.", config.preset)
    new = dataclasses.replace(run, lora=False)
    copy_given_fields(run, new)
    return new


def resume_point(value: str | None, work: Path) -> str | None:
    """The checkpoint folder to resume from: ``value`` itself, or the newest in ``work`` for ``last``/``true``."""
    if value in (None, "", "false", "False"):
        return None
    if str(value).lower() in ("last", "true"):
        from transformers.trainer_utils import get_last_checkpoint

        found = get_last_checkpoint(str(work)) if work.is_dir() else None
        if found is None:
            raise ConfigError(f"resume_from_checkpoint={value!r}: no checkpoint-* folder in {str(work)!r} (the "
                              "checkpoints of an interrupted run of this output_dir); give a checkpoint folder.")
        return found
    if not Path(value).is_dir():
        raise ConfigError(f"resume_from_checkpoint={value!r} is not a checkpoint folder; give a checkpoint-N folder "
                          "or 'last'.")
    return str(value)


def _keep_only_checkpoints(work: Path) -> None:
    """After a failed or interrupted run: remove the hidden work folder unless it holds checkpoints to resume."""
    if not work.is_dir():
        return
    checkpoints = sorted(work.glob("checkpoint-*"))
    if checkpoints:
        logger.warning("The run stopped; %d checkpoint(s) kept in %s: rerun with --resume_from_checkpoint last to "
                       "continue.", len(checkpoints), work)
    else:
        shutil.rmtree(work, ignore_errors=True)


def _measure(run: UnlearnRunArgs, config: UnlearningConfig, model, tokenizer, forget) -> dict[str, float] | None:
    if not run.forget_check:
        return None
    from .objective import forget_objective

    return forget_objective(model, tokenizer, _rows(forget), batch_size=config.per_device_eval_batch_size,
                            max_length=config.max_length)


def _report_objective(before: dict | None, after: dict | None, method: str) -> dict | None:
    """Print the before/after line, warn when nothing moved; the values go into ``hfcl_run.json``."""
    if before is None or after is None:
        return None
    from .objective import format_change, moved

    line = format_change(before, after)
    if not is_main_process():  # one line per run, not per process
        return {"before": before, "after": after}
    print(f"hfcl unlearn ({method}): {line}", flush=True)
    if not moved(before, after):
        logger.warning("Unlearning changed nothing measurable on the forget set (%s); raise --learning_rate or "
                       "--num_train_epochs, or try --preset demo.", line)
    return {"before": before, "after": after}


def _report_s3t(record: dict[str, Any]) -> None:
    d = record["deletion"]
    logger.info("S3T: deleted %d rows; active slices per shard %s -> %s%s; retraining %s %d steps, %.0f%% of "
                "training from scratch (%d steps).", d["deleted_rows"], d["active_before"], d["active_after_deletion"],
                f", retrained to {d['active']}" if d["slices_retrained"] else "",
                "cost" if d["slices_retrained"] else "would cost (--s3t_retrain true)", d["retrain_steps"],
                100 * d["cost_vs_full_retraining"], d["full_retrain_steps"])


def _report_stop(summary: dict[str, Any], config: UnlearningConfig) -> None:
    """One line: where and why early stopping ended the run (or that it never triggered)."""
    if not is_main_process():
        return
    stopped, last = summary["stopped"], summary["checks"][-1]
    if stopped:
        why = ("membership AUC reached {:.3f} (<= {:.2f})".format(stopped["membership_auc"], 0.5 + config.early_stop_tolerance)
               if stopped["reason"] == "membership" else
               "retain answer probability fell to {:.3f} (floor {:.2f} x {:.3f})".format(
                   stopped["retain_prob"], config.early_stop_utility_floor, stopped["retain_prob_start"]))
        print(f"hfcl unlearn: early stop at step {stopped['step']}: {why}", flush=True)
    else:
        print(f"hfcl unlearn: early stop never triggered; membership AUC {last['membership_auc']:.3f} at step "
              f"{last['step']} (target <= {0.5 + config.early_stop_tolerance:.2f}): train longer or raise the "
              "learning rate", flush=True)


def save_run_dir(out: Path, trainer, tokenizer, record: dict[str, Any], overwrite: bool, card: bool = True) -> None:
    """Write the model or adapter, the tokenizer, ``hfcl_run.json`` and hfcl's card (``README.md``, instead of
    PEFT's empty template) to ``out`` atomically (temp dir, rename).

    Every process calls this under ``accelerate launch``: the model is saved collectively (FSDP/ZeRO-3 gather it),
    everything else is written by the main process only, which renames the folder after a barrier."""
    with shared_atomic_directory(out, overwrite=overwrite) as (tmp, main):
        # the unlearned model (ULD: the target + assistant wrapper), on the main process only (should_save)
        getattr(trainer, "save_unlearned", trainer.save_model)(str(tmp))
        if main:
            tokenizer.save_pretrained(str(tmp))
            atomic_write_json(tmp / "hfcl_run.json", record)
            if card:
                _write_card(tmp, out.name)
        # atomic_directory gives every file the umask-derived mode before the rename (safetensors writes 0600)


def _write_card(folder: Path, name: str) -> None:
    from ..hub import write_eval_card

    try:
        write_eval_card(folder, f"your-username/{name}")
    except Exception as exc:  # noqa: BLE001 - the weights are what matters; `hfcl push` renders the card again
        (folder / "README.md").unlink(missing_ok=True)  # never leave PEFT's "[More Information Needed]" template
        logger.warning("Could not write the card of %s (%s: %s); `hfcl push` will render it.", name,
                       type(exc).__name__, exc)


def run_record(run: UnlearnRunArgs, config: UnlearningConfig, trainer, forget, retain, model_dir, seconds: float,
               loss: float) -> dict[str, Any]:
    """The ``hfcl_run.json`` payload."""
    from ..utils.provenance import provenance

    method = get_method(config.method)
    settings = {k: v for k, v in config.to_dict().items() if not k.startswith("_")}
    settings.update(dataclasses.asdict(run), retain_loss=config.retain_kind, reference=trainer.reference_mode)
    base = base_record(run.model, model_dir)
    return {
        "command": "unlearn",
        "method": method.name,
        "method_description": method.description,
        "config": settings,
        "base_model": base,
        "zoo": _is_zoo_stage(run.model) or base["id"].startswith("hfcl:"),
        "forget_split": run.forget_split,
        "data_fingerprint": {"forget": stable_hash(_rows(forget)), "retain": stable_hash(_rows(retain))},
        "seed": config.seed,
        "num_processes": int(trainer.args.world_size),
        "wall_seconds": round(seconds, 2),
        "train_loss": loss,
        "provenance": provenance(),
    }


def base_record(name: str, model_dir: str | os.PathLike | None) -> dict[str, Any]:
    """How ``hfcl_run.json`` names the base model, shareably: ``id`` is ``hfcl:<stage>@<hash>`` for a model of the
    zoo cache (embedded or real), else the name given (a Hub id or folder); ``source`` (real stages) the package,
    version and GGUF sha256 it was converted from; ``local_path`` this machine's folder (local only: the push-time
    privacy filter rewrites it, and nothing shared should rely on it)."""
    from ..zoo.cache import zoo_ref
    from ..zoo.real import source_of

    record: dict[str, Any] = {"id": str(name)}
    if model_dir is None or not os.path.isdir(model_dir):
        return record
    ref = zoo_ref(model_dir)
    if ref and "/" not in ref:
        record["id"] = ref
    source = source_of(model_dir)
    if source:
        record["id"] = source.get("ref") or record["id"]
        record["source"] = {k: v for k, v in source.items() if k != "ref"}
    record["local_path"] = str(model_dir)
    return record


def _rows(dataset) -> list:
    return dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)


# The defaults `hfcl demo` uses: NPO's tuned preset (NPO + GradDiff on all weights, stopped by the membership rule
# against the holdout split; the best recipe of benchmarks/preset_search.py) and quiet.
DEMO_SETTINGS: dict[str, Any] = {"method": "NPO", "retain_loss": "nll", "preset": "tuned", "report_to": "none",
                                 "disable_tqdm": True, "save_strategy": "no", "seed": 1}


def demo_unlearn(model, tokenizer, splits, output_dir, overwrite: bool = True, **overrides: Any):
    """Unlearn ``splits["forget"]`` (keeping ``splits["retain"]``) with NPO+GradDiff's tuned recipe: all weights,
    stopped when forget rows look like ``splits["holdout"]`` to a membership attack.

    Writes the run directory to ``output_dir`` and returns the unlearned model (in eval mode).
    """
    from .trainer import UnlearningTrainer, quiet_console

    out = Path(output_dir)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"Output directory {str(out)!r} already exists.")
    config = UnlearningConfig(output_dir=str(out.parent / f".{out.name}.checkpoints"),
                              **{**DEMO_SETTINGS, **overrides})
    run = UnlearnRunArgs(model=str(getattr(model, "name_or_path", "target")), overwrite=overwrite)
    start = time.time()
    run = recipe_adapter(run, config)
    if config.early_stop_steps and "holdout" not in splits:
        raise DataError(f"demo_unlearn: the {config.preset!r} recipe stops by the membership rule and needs a "
                        f"'holdout' split (rows never trained on); splits has {sorted(splits)}.")
    holdout = splits.get("holdout") if _needs_holdout(config) else None
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tokenizer,
                                peft_config=lora_config(run, config.method) if run.lora else None,
                                    holdout_dataset=holdout)
    quiet_console(trainer)
    result = trainer.train()
    record = run_record(run, config, trainer, splits["forget"], splits["retain"], run.model, time.time() - start,
                        result.training_loss)
    if trainer.membership_stop is not None:
        record["early_stop"] = trainer.membership_stop.summary()
    save_run_dir(out, trainer, tokenizer, record, overwrite)
    if is_main_process():
        shutil.rmtree(config.output_dir, ignore_errors=True)
    model = trainer.unlearned_model()  # ULD: the target + assistant wrapper
    model.eval()
    return model


__all__ = ["DEMO_SETTINGS", "UnlearnRunArgs", "check_rwku_run", "check_whp_run", "demo_unlearn", "load_unlearning_data", "lora_config",
           "recipe_adapter", "unlearn"]
