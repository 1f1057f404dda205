"""``UnlearningTrainer``: a ``transformers.Trainer`` whose loss is ``γ·forget_term + α·retain_term`` on paired
forget/retain batches, with the reference model in its cheapest correct form (see :mod:`hfcl.unlearn.reference`).

Correct under the Trainer's real conditions: every loss term is divided by the number of its units (answer tokens or
examples) in the whole optimizer step, counted over all accumulation micro-batches and all processes, so ``4×2``
accumulation, ``1×8`` and two data-parallel processes give the same update.
"""

from __future__ import annotations

import copy
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ..errors import ConfigError, TrainingError
from ..utils.distributed import engine, require_engine
from ..utils.logging import get_logger
from . import losses as L
from .config import UnlearningConfig
from .data import (
    IDK_ANSWERS,
    PairedCollator,
    PairedUnlearningDataset,
    idk_example,
    tokenize_rows,
    validate_unlearning_data,
)
from .methods import Step, decoder_layer, get_method, reference_needs, retain_term
from .optim import SaliencyMask, SophiaG, saliency_masks
from .reference import Reference, choose_reference, is_peft_model

logger = get_logger(__name__)
PARTS = ("forget", "retain", "idk")


class _LossLog(TrainerCallback):
    """Start the forget/retain loss averages at the step training (re)starts from, so a resumed run logs the same
    averages as an uninterrupted one."""

    def __init__(self, trainer: UnlearningTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self.trainer._metric_sums.clear()
        self.trainer._metric_steps = state.global_step


class _PairingEpoch(TrainerCallback):
    """Rotate the retain pairing at each epoch (also after resuming mid-epoch)."""

    def __init__(self, dataset: PairedUnlearningDataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))


def _default_slice_lora():
    """S3T's slice adapter when none is given: ``hfcl unlearn``'s (:data:`hfcl.unlearn.s3t.SLICE_LORA`)."""
    from peft import LoraConfig

    from .s3t import SLICE_LORA

    return LoraConfig(r=SLICE_LORA["lora_r"], lora_alpha=SLICE_LORA["lora_alpha"],
                      target_modules=SLICE_LORA["lora_target_modules"], lora_dropout=0.0, task_type="CAUSAL_LM")


class UnlearningTrainer(Trainer):
    """Unlearn ``forget_dataset`` while keeping ``retain_dataset`` (TRL-style arguments).

    Args:
        model: a model, a zoo stage name (``"target"``), a local folder or a Hub id.
        args: an :class:`UnlearningConfig`.
        forget_dataset / retain_dataset: datasets (or lists of dicts) in TOFU (``question``/``answer``),
            prompt-completion or conversational (``messages``) format. Loss is on answer tokens only.
        processing_class: the tokenizer (loaded with the model when ``model`` is a name).
        ref_model: an explicit frozen reference model (default: derived from ``model``, see ``args.reference``).
        peft_config: a PEFT config; the model is wrapped with it (the reference is then free).
        holdout_dataset: rows of the same kind the model never saw, for ``args.early_stop_steps`` (see
            :class:`~hfcl.unlearn.stopping.MembershipStop`); ``self.membership_stop`` records the checks.
    """

    def __init__(self, model, args: UnlearningConfig | None = None, forget_dataset=None, retain_dataset=None,
                 processing_class=None, ref_model=None, peft_config=None, callbacks=None,
                 optimizers=(None, None), holdout_dataset=None, **kwargs: Any):
        args = args if args is not None else UnlearningConfig(output_dir="unlearn_output")
        if not isinstance(args, UnlearningConfig):
            raise ConfigError(f"args must be an UnlearningConfig, got {type(args).__name__}.")
        if str(getattr(args, "eval_strategy", "no")) not in ("no", "IntervalStrategy.NO"):
            raise ConfigError("UnlearningTrainer does not evaluate during training; set eval_strategy='no' and run "
                              "`hfcl eval` on the output.")
        if isinstance(model, (str, Path)):
            from ..zoo import load_model

            model, tokenizer = load_model(str(model))
            processing_class = processing_class or tokenizer
        if processing_class is None:
            raise ConfigError("processing_class (the tokenizer) is required when model is not a name or path.")
        self.method = get_method(args.method)
        retain_kind = args.retain_kind
        forget_rows, retain_rows = validate_unlearning_data(forget_dataset, retain_dataset, retain_kind != "none")
        if args.early_stop_steps and holdout_dataset is None:
            raise ConfigError("early_stop_steps needs holdout rows (the same kind of data, never trained on): pass "
                              "holdout_dataset=... (CLI: the embedded holdout split, or --holdout_file).")
        self.uld_target = None
        self.guarded, self.guard_record = None, None  # ECO / GuardFilter / GuardPrompt: fitted by train()
        if self.method.guard:
            if peft_config is not None:
                raise ConfigError(f"{self.method.name} is an inference-time guard and trains no weights: pass no "
                                  "peft_config (CLI: it ignores --lora).")
            self._guard_rows = (forget_rows, retain_rows,
                                [dict(r) for r in holdout_dataset] if holdout_dataset is not None else None)
        # S3T: the ensemble, its served model before (s3t_trained) and after (s3t_served) the forget rows' deletion
        self.s3t, self.s3t_record, self.s3t_served, self.s3t_trained = None, None, None, None
        self.s3t_keep_trained = False  # set True to keep s3t_trained (hfcl unlearn's forget check compares it)
        if self.method.exact:
            self._s3t_setup = (forget_rows, retain_rows, peft_config or _default_slice_lora())
            peft_config = None  # the slices are the ensemble's own adapters; the model stays the pretrained one
        if self.method.name == "ULD":
            model, peft_config = self._uld_assistant(model, peft_config, args.uld_layers)
        if peft_config is not None:
            from peft import get_peft_model
            from transformers import set_seed

            from .peft_checks import check_lora_config

            check_lora_config(model, peft_config)  # a missing module or an absurd rank fails before any allocation
            set_seed(args.seed)  # the adapter's random init is part of the run's recipe

            model = get_peft_model(model, peft_config)
        if args.gradient_checkpointing and is_peft_model(model):
            model.enable_input_require_grads()  # otherwise checkpointed LoRA layers get no gradient
        if args.trainable_params_regex:
            _restrict_trainable(model, args.trainable_params_regex)

        self.rmu_layer = None
        if self.method.name == "RMU" or retain_kind == "embed":
            n_layers = model.config.num_hidden_layers
            self.rmu_layer = args.rmu_layer if args.rmu_layer is not None else n_layers // 2
            decoder_layer(model, self.rmu_layer)  # fail now if it does not exist

        forget_tok = tokenize_rows(processing_class, forget_rows, args.max_length)
        retain_tok = tokenize_rows(processing_class, retain_rows, args.max_length) if retain_kind != "none" else []
        idk_tok = []
        if self.method.needs_idk:
            answers = args.idk_answers or IDK_ANSWERS
            idk_tok = tokenize_rows(processing_class, [idk_example(r, i, answers) for i, r in enumerate(forget_rows)],
                                    args.max_length)
        counterfactual_tok = None
        if self.method.needs_teacher:
            from .counterfactual import counterfactual_names, counterfactual_rows

            names = counterfactual_names(args, holdout_dataset)
            cf_rows = counterfactual_rows(forget_rows, names, args.whp_counterfactuals, args.whp_entity_field,
                                          args.seed)
            counterfactual_tok = [tokenize_rows(processing_class, rows, args.max_length) for rows in cf_rows]
        dataset = PairedUnlearningDataset(forget_tok, retain_tok, idk_tok, seed=args.seed)
        mode = choose_reference(args.reference, reference_needs(self.method, retain_kind), model, ref_model)
        if args.soul:
            kwargs["optimizer_cls_and_kwargs"] = (SophiaG, {
                "lr": args.learning_rate, "betas": (args.soul_beta1, args.soul_beta2), "rho": args.soul_rho,
                "batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps})
        super().__init__(model=model, args=args, train_dataset=dataset, data_collator=PairedCollator(processing_class),
                         processing_class=processing_class, callbacks=callbacks, optimizers=optimizers, **kwargs)
        self._check_engine(mode, ref_model)
        self.loss_is_scaled_for_ga = True
        self.add_callback(_PairingEpoch(dataset))
        self.add_callback(_LossLog(self))
        self.membership_stop = None
        if args.early_stop_steps:
            from .stopping import MembershipStop

            holdout_rows = [dict(r) for r in holdout_dataset]
            if not holdout_rows:
                raise ConfigError("holdout_dataset is empty; early stopping needs rows the model never saw.")
            self.membership_stop = MembershipStop(
                processing_class, forget_rows, holdout_rows, retain_rows, every=args.early_stop_steps,
                tolerance=args.early_stop_tolerance, utility_floor=args.early_stop_utility_floor,
                batch_size=args.per_device_eval_batch_size, max_length=args.max_length)
            self.add_callback(self.membership_stop)
        self.reference_mode = mode
        self.reference = Reference.build(mode, self.model, self.accelerator.unwrap_model, ref_model)
        if mode == "model":
            self.reference.ref_model.to(self.args.device)
        if mode == "cached":
            parts = {"forget": forget_tok, **({"idk": idk_tok} if idk_tok else {})}
            self.reference.fill_cache(self.model, parts, lambda rows: PairedCollator(processing_class).pad(
                [dict(r) for r in rows]), args.per_device_eval_batch_size, self.args.device)
        self.teacher = None
        if counterfactual_tok is not None:
            from .counterfactual import CounterfactualTeacher

            self.teacher = CounterfactualTeacher(args.whp_top_k)
            source = ref_model.to(self.args.device) if ref_model is not None else self.model
            self.teacher.fill(source, forget_tok, counterfactual_tok, PairedCollator(processing_class).pad_right,
                              args.per_device_eval_batch_size, self.args.device)
        self.rmu_control = None
        if self.method.name == "RMU":
            self.rmu_control = L.rmu_control_vector(model.config.hidden_size, args.rmu_steering_coeff, args.seed)
        self.salun = self._saliency(forget_tok, processing_class) if args.salun_sparsity else None
        self._metric_sums: dict[str, float] = defaultdict(float)
        self._metric_steps = 0
        logger.info("Unlearning with %s (retain: %s, reference: %s) on %d forget / %d retain examples.",
                    self.method.name, retain_kind, mode, len(forget_tok), len(retain_tok))

    def _uld_assistant(self, model, peft_config, layers: int | None):
        """ULD trains an assistant cut from ``model`` (kept frozen as the served model's target); LoRA r 16, alpha
        32 on every linear layer unless a ``peft_config`` is given, as in the paper."""
        from .uld import ASSISTANT_LORA, build_assistant

        if is_peft_model(model):
            model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        self.uld_target = model.eval()
        for p in self.uld_target.parameters():
            p.requires_grad_(False)
        if peft_config is None:
            from peft import LoraConfig

            peft_config = LoraConfig(**ASSISTANT_LORA, lora_dropout=0.0, task_type="CAUSAL_LM")
        return build_assistant(model, layers), peft_config

    def _fit_guard(self):
        """An inference-time guard's "training": fit it around the unchanged model (no optimizer steps)."""
        import time

        from transformers.trainer_utils import TrainOutput

        from .guard import fit_guard

        started = time.perf_counter()
        base = self.accelerator.unwrap_model(self.model)
        self.guarded, self.guard_record = fit_guard(base, self.processing_class, self.method.name,
                                                    *self._guard_rows, self.args)
        seconds = round(time.perf_counter() - started, 3)
        self.guard_record["fit_seconds"] = seconds
        self.state.log_history.append({"step": 0, "guard_fit_seconds": seconds})
        return TrainOutput(0, 0.0, {"train_runtime": seconds})

    def _fit_s3t(self):
        """S3T's "training": train the sliced ensemble from the (pretrained) model on forget + retain rows, or load
        ``args.s3t_ensemble``, then delete the forget rows (deactivating, and with ``s3t_retrain`` retraining, the
        slices that saw them)."""
        import time

        from transformers.trainer_utils import TrainOutput

        from .s3t import S3TEnsemble, S3TSettings

        if self.accelerator.num_processes > 1:
            raise ConfigError("S3T trains its slices one after another in one process: run it without "
                              "`accelerate launch` (or with --num_processes 1).")
        a = self.args
        forget_rows, retain_rows, lora = self._s3t_setup
        base = self.accelerator.unwrap_model(self.model)
        progress = not a.disable_tqdm
        started = time.perf_counter()
        if a.s3t_ensemble:
            self.s3t = S3TEnsemble.load(a.s3t_ensemble, base, self.processing_class)
        else:
            settings = S3TSettings(shards=a.s3t_shards, slices=a.s3t_slices, epochs=a.num_train_epochs,
                                   learning_rate=a.learning_rate, batch_size=a.per_device_train_batch_size,
                                   max_length=a.max_length, seed=a.seed, use_cpu=a.use_cpu, bf16=bool(a.bf16))
            self.s3t = S3TEnsemble.train(base, self.processing_class, forget_rows + retain_rows, lora, settings,
                                         progress)
        trained = time.perf_counter()
        if self.s3t_keep_trained:
            self.s3t_trained = self.s3t.served_model()
        deletion = self.s3t.delete(forget_rows, retrain=a.s3t_retrain, surviving=retain_rows, progress=progress)
        self.s3t_served = self.s3t.served_model()
        done = time.perf_counter()
        self.s3t_record = {**self.s3t.record(), "deletion": deletion, "loaded": bool(a.s3t_ensemble),
                           "train_seconds": round(trained - started, 3), "delete_seconds": round(done - trained, 3)}
        self.state.log_history.append({"step": 0, "s3t_train_seconds": self.s3t_record["train_seconds"],
                                       "s3t_delete_seconds": self.s3t_record["delete_seconds"]})
        return TrainOutput(0, 0.0, {"train_runtime": round(done - started, 3)})

    def unlearned_model(self):
        """The model unlearning produced: ``self.model``, for ULD the :class:`~hfcl.unlearn.uld.LogitDifferenceModel`
        of the frozen target and the trained assistant (its LoRA merged in), for a guard its
        :class:`~hfcl.unlearn.guard.GuardedModel` (after ``train()``)."""
        if self.method.guard:
            if self.guarded is None:
                raise TrainingError(f"{self.method.name}: call train() first (it fits the guard).")
            return self.guarded
        if self.method.exact:
            if self.s3t_served is None:
                raise TrainingError("S3T: call train() first (it trains the ensemble and deletes the forget rows).")
            return self.s3t_served
        if self.uld_target is None:
            return self.model
        from .uld import LogitDifferenceModel

        assistant = copy.deepcopy(self.accelerator.unwrap_model(self.model))
        if is_peft_model(assistant):
            assistant = assistant.merge_and_unload()
        target = self.uld_target.to(next(assistant.parameters()).device)
        return LogitDifferenceModel.from_models(target, assistant.eval(), self.args.uld_weight,
                                                self.args.uld_top_filter)

    def save_unlearned(self, folder: str) -> None:
        """Save :meth:`unlearned_model` to ``folder`` (collectively under several processes; ULD: main only)."""
        if self.method.exact:
            if self.args.should_save:
                self.unlearned_model().save_pretrained(folder)
                self.s3t.save(Path(folder) / "s3t")  # the active slices and the plan, to delete more rows later
        elif self.uld_target is None and not self.method.guard:
            self.save_model(folder)
        elif self.args.should_save:
            self.unlearned_model().save_pretrained(folder)

    def _check_engine(self, mode: str, ref_model) -> None:
        """Refuse, before any training, the options the launch's engine cannot run (see ``require_engine``)."""
        uses = {}
        if self.args.salun_sparsity:
            uses["salun_sparsity"] = (("zero0", "zero1", "zero2", "zero3", "fsdp"), (
                "SalUn masks edit gradients through hooks on the model's weights and restore the frozen entries after "
                "each optimizer step; DeepSpeed keeps its own master weights and gradient partitions, and FSDP "
                "replaces the weights by shards, so the mask would silently not hold (SalUn supports one process and "
                "DDP)"))
        if mode == "model" and ref_model is None:
            uses["reference=model"] = (("zero3",), (
                "the reference is a copy of the trained model, and a ZeRO-3 model cannot be copied (TRL#827); pass "
                "ref_model=... or use the cached reference (--reference cached)"))
        method = getattr(self, "method", None)
        if method is not None and method.name == "ULD":
            uses["method=ULD"] = (("zero3", "fsdp"), (
                "ULD serves the target and its trained assistant side by side, merged and saved from the main process; "
                "a sharded assistant would be saved as shards (use DDP or one process)"))
        if method is not None and method.needs_teacher:
            uses[f"method={method.name}"] = (("zero3", "fsdp"), (
                "the counterfactual teacher is computed with whole weights before training (use DDP, ZeRO-1/2 or one "
                "process)"))
        require_engine(engine(self.accelerator), uses)

    # ---- loss ----------------------------------------------------------------------------------------------------

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device):
        """Units per loss term in the whole optimizer step (all micro-batches, all processes)."""
        if not batch_samples:
            return None
        return self._count_units(batch_samples, device)

    def _count_units(self, batches: list[dict], device) -> dict[str, torch.Tensor]:
        keys, values = [], []
        for part in PARTS:
            if part in batches[0]:
                keys += [f"{part}_tokens", f"{part}_examples"]
                values += [sum(int(b[part]["labels"][:, 1:].ne(L.IGNORE_INDEX).sum()) for b in batches),
                           sum(int(b[part]["labels"].shape[0]) for b in batches)]
        vec = torch.tensor(values, dtype=torch.float32, device=device)
        if self.args.world_size > 1:
            vec = self.accelerator.gather(vec.unsqueeze(0)).sum(0)
        return dict(zip(keys, vec))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        counts = num_items_in_batch if isinstance(num_items_in_batch, dict) else None
        # DDP averages gradients over processes; the terms are normalised by global counts, so undo that average.
        scale = self.accelerator.num_processes if counts is not None else 1
        if counts is None:
            counts = {k: v for k, v in zip(*_local_counts(inputs))}
        step = Step(model, inputs, counts, self.reference, self.args, self.method, self.rmu_control, self.rmu_layer,
                    self.teacher)
        forget = self.method.forget(step)
        retain = retain_term(self.args.retain_kind, step)
        loss = self.args.forget_weight * forget
        if retain is not None:
            loss = loss + self.args.alpha * retain
        if not torch.isfinite(loss.detach()).all():
            clip = ("" if self.args.max_grad_norm and self.args.max_grad_norm > 0
                    else ", or enable max_grad_norm (e.g. 1.0)")
            raise TrainingError(
                f"Non-finite unlearning loss at step {self.state.global_step + 1} with method {self.method.name} "
                f"(forget term {float(forget.detach()):.4g}, retain term "
                f"{float(retain.detach()) if retain is not None else 0.0:.4g}); lower learning_rate or beta{clip}.")
        if model.training:
            self._metric_sums["forget_loss"] += float(forget.detach()) * scale
            if retain is not None:
                self._metric_sums["retain_loss"] += float(retain.detach()) * scale
        loss = loss * scale
        return (loss, {"forget_loss": forget.detach()}) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        steps = self.state.global_step - self._metric_steps
        if "loss" in logs and steps > 0 and self._metric_sums:
            for key, total in self._metric_sums.items():
                logs[key] = round(total / steps, 6)
            self._metric_sums.clear()
            self._metric_steps = self.state.global_step
        super().log(logs, start_time)

    # ---- optimizer-level options ---------------------------------------------------------------------------------

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.salun is not None and not getattr(self, "_salun_attached", False):
            self.salun.attach(optimizer)
            self._salun_attached = True
        return optimizer

    def _saliency(self, forget_tok: list[dict], tokenizer) -> SaliencyMask:
        """SalUn masks from the gradient of the forget NLL over the whole forget set at the start."""
        model = self.model
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        collate = PairedCollator(tokenizer).pad
        total = sum(len([t for t in r["labels"][1:] if t != L.IGNORE_INDEX]) for r in forget_tok)
        model.zero_grad(set_to_none=True)
        bs = self.args.per_device_train_batch_size
        for start in range(0, len(forget_tok), bs):
            rows = [dict(r) for r in forget_tok[start:start + bs]]
            batch = {k: v.to(self.args.device) for k, v in collate(rows).items()}
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            L.nll_loss(logits, batch["labels"], total).backward()
        grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in params.items()}
        masks = saliency_masks(grads, self.args.salun_sparsity)
        model.zero_grad(set_to_none=True)
        mask = SaliencyMask(params, masks)
        logger.info("SalUn: updating %.1f%% of %d trainable weights.", 100 * mask.fraction(),
                    sum(p.numel() for p in params.values()))
        return mask

    # ---- saving and resuming -------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """``Trainer.train``; on resume the cached reference log-probs are read back from the checkpoint (after
        checking its fingerprint of the forget data and reference model) instead of being trusted to the model.
        An inference-time guard (ECO, GuardFilter, GuardPrompt) is fitted instead, with no optimizer step."""
        if self.method.guard:
            return self._fit_guard()
        if self.method.exact:
            return self._fit_s3t()
        if resume_from_checkpoint is True:
            from transformers.trainer_utils import get_last_checkpoint

            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ConfigError(f"resume_from_checkpoint=True but {self.args.output_dir} holds no checkpoint-*.")
        if resume_from_checkpoint:
            if not Path(resume_from_checkpoint).is_dir():
                raise ConfigError(f"resume_from_checkpoint={str(resume_from_checkpoint)!r} is not a folder.")
            if self.reference_mode == "cached":
                self.reference.load_cache(resume_from_checkpoint)
            if self.teacher is not None:
                self.teacher.load(resume_from_checkpoint)
        return super().train(resume_from_checkpoint=resume_from_checkpoint or None, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        if self.reference_mode == "cached" and self.reference.cache and self.args.should_save:
            self.reference.save_cache(Path(output_dir or self.args.output_dir))
        folder = Path(output_dir or self.args.output_dir)
        if self.teacher is not None and self.args.should_save and folder.name.startswith("checkpoint-"):
            self.teacher.save(folder)  # for resuming only: it is derived forget data, never part of a run folder


class QuietProgress(ProgressCallback):
    """Transformers' training bar with the last loss as its postfix instead of a ``{'loss': ...}`` dict written
    under it on every log (and the final ``{'train_runtime': ...}``); the metrics stay in ``state.log_history``."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)


def quiet_console(trainer: Trainer) -> Trainer:
    """Stop ``trainer`` printing log dicts on the console (as hfcl's zoo does): drop :class:`PrinterCallback` (the
    ``disable_tqdm`` printer) and swap :class:`ProgressCallback` for :class:`QuietProgress`, keeping the bar."""
    had_bar = any(isinstance(cb, ProgressCallback) for cb in trainer.callback_handler.callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if had_bar:
        trainer.add_callback(QuietProgress())
    return trainer


def _local_counts(inputs: dict[str, Any]) -> tuple[list[str], list[torch.Tensor]]:
    keys, values = [], []
    for part in PARTS:
        if part in inputs:
            labels = inputs[part]["labels"]
            keys += [f"{part}_tokens", f"{part}_examples"]
            values += [labels[:, 1:].ne(L.IGNORE_INDEX).sum(), labels.shape[0]]
    return keys, values


def _restrict_trainable(model, pattern: str) -> None:
    regex = re.compile(pattern)
    matched = 0
    for name, p in model.named_parameters():
        if p.requires_grad and not regex.search(name):
            p.requires_grad_(False)
        matched += int(p.requires_grad)
    if not matched:
        raise ConfigError(f"trainable_params_regex={pattern!r} matches no trainable parameter; names look like "
                          f"{next(n for n, _ in model.named_parameters())!r}.")


__all__ = ["QuietProgress", "UnlearningTrainer", "quiet_console"]
