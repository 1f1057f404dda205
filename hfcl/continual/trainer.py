"""``ContinualTrainer``: a ``transformers.Trainer`` that learns a stream of tasks one after another.

One instance trains every task: :meth:`ContinualTrainer.train_task` runs the strategies' task-boundary hooks and
one ``train()`` call per task, in a per-task output folder (``global_step`` restarts at 0 every task, so
``checkpoint-N`` folders would collide otherwise). The loss of each micro-batch is the task's NLL on answer tokens,
computed by ``Trainer.compute_loss`` itself, plus every strategy's terms through :meth:`scale_term`, the one helper
that makes each term count once per optimizer step: with ``num_items_in_batch`` the Trainer does not divide the loss
by the accumulation steps, so a parameter penalty added per micro-batch would count ``GA`` times
(research/continual.md §0.2, §4.3).

Quadratic parameter penalties (EWC, online EWC, L2) skip the autograd graph: :meth:`training_step` adds their exact
gradient once per optimizer step, on the micro-batch that ends the accumulation window, i.e. after the backward in
which DDP all-reduces (every rank adds the same gradient to the averaged one, as a penalty in every rank's loss
would give) and before the Trainer clips, so clipping and the logged ``grad_norm`` see the full gradient. Under
DeepSpeed or FSDP (gradients not in ``.grad`` of the unwrapped parameters) they go through the loss as before.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback

from ..data.formatting import IGNORE_INDEX, tokenize_example
from ..errors import ConfigError, TrainingError
from ..utils.logging import get_logger
from .config import ContinualConfig
from .schedules import anneal_steps, infinite_scheduler
from .strategies import Strategy, Term, add_quadratic_grad_, build_strategies, snapshot, squared_distance

logger = get_logger(__name__)


class RowsDataset(torch.utils.data.Dataset):
    """Tokenized rows (``input_ids``, ``attention_mask``, ``labels``) as a map-style dataset."""

    def __init__(self, rows: Sequence[dict[str, list[int]]]):
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return dict(self.rows[i])


class _Hooks(TrainerCallback):
    """Forwards optimizer steps to the strategies and keeps the infinite schedule's pre-anneal weights."""

    def __init__(self, trainer: ContinualTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        self._maybe_keep_pre_anneal(state, at_begin=True)

    def on_epoch_begin(self, args, state, control, **kwargs):
        dataset = self.trainer.train_dataset
        if hasattr(dataset, "set_epoch"):  # replay draws its examples afresh each epoch
            dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-6))

    def on_optimizer_step(self, args, state, control, **kwargs):
        for strategy in self.trainer.strategies:
            strategy.on_optimizer_step(self.trainer)

    def on_step_end(self, args, state, control, **kwargs):
        self._maybe_keep_pre_anneal(state)

    def _maybe_keep_pre_anneal(self, state, at_begin: bool = False) -> None:
        t = self.trainer
        if t.args.schedule != "infinite" or not state.max_steps:
            return
        start = state.max_steps - anneal_steps(state.max_steps, t.args.infinite_anneal_ratio)
        if (at_begin and start <= state.global_step) or (not at_begin and state.global_step == start):
            t.pre_anneal = snapshot(t.trainable_params())


class ContinualTrainer(Trainer):
    """Learn tasks in sequence with composable strategies (TRL-style arguments).

    Args:
        model: a model, a zoo stage name (``"base"``), a local folder or a Hub id.
        args: a :class:`ContinualConfig`.
        processing_class: the tokenizer (loaded with the model when ``model`` is a name).
        peft_config: a PEFT config; the model is wrapped with it (needed by O-LoRA; LwF's ``base`` teacher is then
            the adapter-disabled model, at no memory cost).
        strategies: strategy objects (default: built from ``args.strategy``).

    Use :meth:`train_task` per task (the runner, :func:`hfcl.continual.run_stream`, does this and fills R).
    """

    def __init__(self, model, args: ContinualConfig | None = None, processing_class=None, peft_config=None,
                 strategies: Sequence[Strategy] | None = None, callbacks=None, optimizers=(None, None),
                 **kwargs: Any):
        args = args if args is not None else ContinualConfig(output_dir="continual_output")
        if not isinstance(args, ContinualConfig):
            raise ConfigError(f"args must be a ContinualConfig, got {type(args).__name__}.")
        if isinstance(model, (str, Path)):
            from ..zoo import load_model

            model, tokenizer = load_model(str(model))
            processing_class = processing_class or tokenizer
        if processing_class is None:
            raise ConfigError("processing_class (the tokenizer) is required when model is not a name or path.")
        if peft_config is not None:
            from peft import get_peft_model
            from transformers import set_seed

            set_seed(args.seed)  # the adapter's random init is part of the run's recipe
            model = get_peft_model(model, peft_config)
        if args.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
        model.train()
        self.strategies = list(strategies) if strategies is not None else build_strategies(args)
        collator = DataCollatorForSeq2Seq(processing_class, padding=True, label_pad_token_id=IGNORE_INDEX,
                                          return_tensors="pt")
        super().__init__(model=model, args=args, data_collator=collator, processing_class=processing_class,
                         callbacks=callbacks, optimizers=optimizers, **kwargs)
        self.add_callback(_Hooks(self))
        self.task_rows: list[list[dict[str, list[int]]]] = []
        self.task_index = -1
        self.stream_steps = 0
        self.deleted: dict[int, list[int]] = {}  # task index -> its training rows deleted by forget events
        self.pre_anneal: dict[str, torch.Tensor] | None = None
        self._optimizer_params: set[str] | None = None
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_last: dict[str, float] = {}
        self._term_steps = 0
        self.base_output_dir = args.output_dir
        for strategy in self.strategies:
            strategy.setup(self)

    # ---- views the strategies use --------------------------------------------------------------------------------

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    @property
    def is_peft(self) -> bool:
        return hasattr(self.unwrapped, "peft_config")

    def trainable_params(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.unwrapped.named_parameters() if p.requires_grad}

    def all_params(self) -> dict[str, torch.nn.Parameter]:
        return dict(self.unwrapped.named_parameters())

    def tokenize(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, list[int]]]:
        return [tokenize_example(self.processing_class, r, self.args.max_length) for r in rows]

    def collate(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Right-padded tensors on the training device."""
        tok = self.processing_class
        side, tok.padding_side = tok.padding_side, "right"
        try:
            batch = self.data_collator([dict(r) for r in rows])
        finally:
            tok.padding_side = side
        return {k: v.to(self.args.device) for k, v in batch.items()}

    # ---- one task ------------------------------------------------------------------------------------------------

    def train_task(self, task_index: int, rows: Sequence[dict[str, Any]], name: str | None = None,
                   resume_from_checkpoint: str | bool | None = None):
        """Train task ``task_index`` on ``rows`` (untokenized); returns the ``train()`` output."""
        if task_index != len(self.task_rows):
            raise TrainingError(f"Task {task_index} out of order: {len(self.task_rows)} task(s) registered so far.")
        self.task_index = task_index
        self.task_rows.append(self.tokenize(rows))
        if self.pre_anneal is not None:  # infinite schedule: continue from the weights before the last anneal
            with torch.no_grad():
                for n, p in self.trainable_params().items():
                    if n in self.pre_anneal:
                        p.copy_(self.pre_anneal[n].to(p.device, p.dtype))
            self.pre_anneal = None
        for strategy in self.strategies:
            strategy.begin_task(self, task_index)
        mixed = self.task_rows[task_index]
        for strategy in self.strategies:
            mixed = strategy.training_rows(self, task_index, mixed)
        self.train_dataset = mixed if isinstance(mixed, torch.utils.data.Dataset) else RowsDataset(mixed)
        trainable = set(self.trainable_params())
        if self.args.reset_optimizer or (self._optimizer_params is not None and trainable != self._optimizer_params):
            self.optimizer = None
        if self.args.schedule == "infinite" or self.optimizer is None:
            self.lr_scheduler = None
        self._optimizer_params = trainable
        label = name or f"task{task_index + 1}"
        self.args.output_dir = str(Path(self.base_output_dir) / f"task-{task_index + 1}-{label}")
        logger.info("Task %d/%s: %d examples (%d after strategies), %d trainable tensors.", task_index + 1, label,
                    len(self.task_rows[task_index]), len(mixed), len(trainable))
        result = self.train(resume_from_checkpoint=resume_from_checkpoint)
        self.stream_steps += self.state.global_step
        for strategy in self.strategies:
            strategy.end_task(self, task_index)
        return result

    def keep_optimizer(self) -> None:
        """The current optimizer (restored on resume) goes on into the next task when ``reset_optimizer=False``."""
        self._optimizer_params = set(self.trainable_params())

    def forget_rows(self, task_index: int, indices: Sequence[int]) -> None:
        """Record that rows ``indices`` of task ``task_index`` were unlearned and tell every strategy (after the
        unlearning ran, so anchors and averages move to the unlearned weights)."""
        if not 0 <= task_index < len(self.task_rows):
            raise TrainingError(f"Cannot forget rows of task {task_index + 1}: only {len(self.task_rows)} learned.")
        self.deleted[task_index] = sorted(set(self.deleted.get(task_index, [])) | set(indices))
        for strategy in self.strategies:
            strategy.on_forget(self, task_index, list(indices))

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.args.schedule != "infinite":
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = infinite_scheduler(optimizer or self.optimizer, self.args, self.stream_steps,
                                                   num_training_steps)
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # ---- loss ----------------------------------------------------------------------------------------------------

    def _loss_is_scaled_for_ga(self, num_items_in_batch) -> bool:
        """The Trainer's own rule (``training_step``): is the loss of ``compute_loss`` left undivided by GA?"""
        if self.loss_is_scaled_for_ga is not None:
            return bool(self.loss_is_scaled_for_ga)
        return bool((self.model_accepts_loss_kwargs and num_items_in_batch is not None)
                    or self.compute_loss_func is not None)

    def scale_term(self, term: Term, inputs: dict[str, Any], num_items_in_batch) -> torch.Tensor:
        """The one helper: ``term`` as its share of this micro-batch, so that it counts once per optimizer step.

        ``step`` terms are divided by the accumulation steps when the Trainer will not do it. ``token`` terms (sums
        over this micro-batch's answer tokens) are divided by the answer tokens of the whole step, and multiplied by
        the number of processes where the Trainer does the same to the task loss (data parallelism averages).
        """
        ga = max(1, int(getattr(self, "current_gradient_accumulation_steps", None) or
                        self.args.gradient_accumulation_steps))
        scaled = self._loss_is_scaled_for_ga(num_items_in_batch)
        if term.kind == "step":
            return term.value / ga if scaled else term.value
        if term.kind != "token":
            raise TrainingError(f"Unknown term kind {term.kind!r} from {term.name}.")
        if scaled and num_items_in_batch is not None:
            value = term.value / num_items_in_batch
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                value = value * self.accelerator.num_processes
            return value
        local = inputs["labels"][:, 1:].ne(IGNORE_INDEX).sum().clamp(min=1)
        value = term.value / local
        return value / ga if scaled else value

    @property
    def direct_quadratic_grads(self) -> bool:
        """Whether quadratic penalties are added to ``.grad`` directly (not under DeepSpeed / FSDP)."""
        return self.accelerator.distributed_type not in (DistributedType.DEEPSPEED, DistributedType.FSDP)

    def _quadratic_terms(self):
        return [q for strategy in self.strategies for q in strategy.quadratic_terms(self)]

    def _logs_after_this_step(self) -> bool:
        """Will the Trainer log after the optimizer step about to happen (``DefaultFlowCallback``'s rule)?"""
        args, state = self.args, self.state
        strategy = str(getattr(args.logging_strategy, "value", args.logging_strategy))
        if strategy == "no":
            return False
        if strategy != "steps":
            return True  # epoch logging: keep the value of every step, the last one is logged
        step = state.global_step + 1
        return (step == 1 and args.logging_first_step) or (state.logging_steps and step % state.logging_steps == 0)

    def add_quadratic_grads(self) -> None:
        """Add every quadratic penalty's exact gradient once (call after the step's last backward, before clipping).

        Its value (at the weights before the update) is computed, without a graph, only when this step is logged.
        """
        terms = self._quadratic_terms()
        if not terms:
            return
        scaler = getattr(self.accelerator, "scaler", None)  # fp16: the backward gradients are still scaled
        grad_scale = float(scaler.get_scale()) if scaler is not None and scaler.is_enabled() else 1.0
        with_value = self._logs_after_this_step()
        params = self.all_params()
        values: dict[str, float] = {}
        for q in terms:
            value = add_quadratic_grad_(params, q, grad_scale, with_value)
            if value is not None:
                values[q.name] = values.get(q.name, 0.0) + float(value)
        for name, value in values.items():
            if not math.isfinite(value):
                raise TrainingError(f"Non-finite {name} penalty at step {self.state.global_step + 1} of task "
                                    f"{self.task_index + 1}; lower learning_rate or the strategy strengths.")
        self._term_last.update(values)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.strategies and self.direct_quadratic_grads and self.accelerator.sync_gradients:
            self.add_quadratic_grads()
        return loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        if model.training and self.strategies:
            terms = [] if self.direct_quadratic_grads else [
                Term(q.name, q.coef * squared_distance(self.all_params(), q.anchor, q.weight))
                for q in self._quadratic_terms()]
            for strategy in self.strategies:
                terms.extend(strategy.penalty(self, model, inputs, outputs))
            if terms:
                for term in terms:
                    share = self.scale_term(term, inputs, num_items_in_batch)
                    loss = loss + share.to(loss.device, loss.dtype)
                    self._term_sums[term.name] += float(share.detach())
            if not torch.isfinite(loss.detach()).all():
                raise TrainingError(f"Non-finite loss at step {self.state.global_step + 1} of task "
                                    f"{self.task_index + 1} with strategies {self.args.strategy}; lower "
                                    "learning_rate or the strategy strengths.")
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        steps = self.state.global_step - self._term_steps
        if "loss" in logs and steps > 0 and self._term_sums:
            for key, total in self._term_sums.items():
                logs[key] = round(total / steps, 6)
            self._term_sums.clear()
            self._term_steps = self.state.global_step
        if "loss" in logs and self._term_last:  # quadratic penalties: the value at the step that is logged
            logs.update({key: round(value, 6) for key, value in self._term_last.items()})
            self._term_last.clear()
        if "loss" in logs:
            logs["task"] = self.task_index + 1
        super().log(logs, start_time)

    def train(self, *args, **kwargs):
        self._term_steps = 0
        self._term_sums.clear()
        self._term_last.clear()
        return super().train(*args, **kwargs)

    # ---- state for resuming --------------------------------------------------------------------------------------

    def continual_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, metadata)`` of everything the stream carries between tasks (strategies, schedule)."""
        tensors: dict[str, torch.Tensor] = {}
        meta: dict[str, Any] = {"tasks_done": len(self.task_rows), "stream_steps": self.stream_steps,
                                "strategies": [], "deleted": {str(k): v for k, v in self.deleted.items()}}
        for i, strategy in enumerate(self.strategies):
            state = dict(strategy.state_dict())
            for key, value in state.pop("tensors", {}).items():
                tensors[f"strategy{i}.{key}"] = value.detach().cpu().contiguous()
            meta["strategies"].append({"name": strategy.name, **state})
        if self.pre_anneal is not None:
            tensors.update({f"pre_anneal.{n}": v.cpu().contiguous() for n, v in self.pre_anneal.items()})
        meta["has_pre_anneal"] = self.pre_anneal is not None
        return tensors, meta

    def load_continual_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                             task_rows: Sequence[Sequence[dict[str, Any]]]) -> None:
        """Restore :meth:`continual_state` after ``meta["tasks_done"]`` tasks (``task_rows``: their raw rows)."""
        names = [s["name"] for s in meta["strategies"]]
        if names != [s.name for s in self.strategies]:
            raise ConfigError(f"The checkpoint was made with strategies {names}, not {self.args.strategy!r}.")
        self.task_rows = [self.tokenize(rows) for rows in task_rows]
        self.task_index = len(self.task_rows) - 1
        self.stream_steps = int(meta["stream_steps"])
        self.deleted = {int(k): list(v) for k, v in meta.get("deleted", {}).items()}
        for i, (strategy, state) in enumerate(zip(self.strategies, meta["strategies"])):
            prefix = f"strategy{i}."
            state = {k: v for k, v in state.items() if k != "name"}
            state["tensors"] = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            strategy.load_state_dict(state)
        if meta.get("has_pre_anneal"):
            self.pre_anneal = {k[len("pre_anneal."):]: v for k, v in tensors.items() if k.startswith("pre_anneal.")}


__all__ = ["ContinualTrainer", "RowsDataset"]
