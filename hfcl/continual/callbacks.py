"""``ForgettingMonitor``: cross-entropy and KL to the base model on a probe set, logged during training.

Kalajdzievski ("Scaling laws for forgetting when fine-tuning LLMs", 2024) measures forgetting as the cross-entropy
of the fine-tuned model against the base model's predictions; it is cheap to track while training. The monitor keeps
the base model's log-probabilities at the probe's answer positions (computed once, before the first step: no
reference model in memory) and, every ``every_n_steps`` optimizer steps and at each task's end, logs

* ``probe_ce``: mean NLL of the probe answers under the current model;
* ``probe_kl``: mean over answer positions of ``KL(p_base ‖ p_model)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import DataCollatorForSeq2Seq, TrainerCallback

from ..data.formatting import IGNORE_INDEX, tokenize_example


class ForgettingMonitor(TrainerCallback):
    """Log ``probe_ce`` and ``probe_kl`` (to the model as it was when training first began) on ``rows``."""

    def __init__(self, tokenizer, rows: Sequence[dict[str, Any]], every_n_steps: int = 0, max_length: int = 256,
                 batch_size: int = 32):
        self.tokenizer = tokenizer
        self.features = [tokenize_example(tokenizer, r, max_length) for r in rows]
        self.every = int(every_n_steps)
        self.batch_size = batch_size
        self.collate = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX,
                                              return_tensors="pt")
        self.base: list[torch.Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.task = 0

    def _batches(self, model):
        device = next(model.parameters()).device
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        try:
            for start in range(0, len(self.features), self.batch_size):
                batch = self.collate([dict(f) for f in self.features[start:start + self.batch_size]])
                yield {k: v.to(device) for k, v in batch.items()}
        finally:
            self.tokenizer.padding_side = side

    @torch.no_grad()
    def _logprobs(self, model) -> list[tuple[torch.Tensor, torch.Tensor]]:
        was_training = model.training
        model.eval()
        out = []
        for batch in self._batches(model):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
            labels = batch["labels"][:, 1:]
            mask = labels != IGNORE_INDEX
            out.append((F.log_softmax(logits[mask].float(), -1).cpu(), labels[mask].cpu()))
        model.train(was_training)
        return out

    def measure(self, model) -> dict[str, float]:
        """``{"probe_ce", "probe_kl"}`` of ``model`` now."""
        current = self._logprobs(model)
        if self.base is None:
            self.base = [lp for lp, _ in current]
        nll = kl = 0.0
        count = 0
        for (lp, gold), base in zip(current, self.base):
            nll += float(-lp.gather(1, gold[:, None]).sum())
            kl += float((base.exp() * (base - lp)).sum())
            count += gold.numel()
        return {"probe_ce": nll / max(count, 1), "probe_kl": kl / max(count, 1)}

    def set_reference(self, model) -> None:
        """Make ``model`` (as it is now) the reference of ``probe_kl`` (resume: the stream's starting model)."""
        self.base = [lp for lp, _ in self._logprobs(model)]

    def resume(self, history: list[dict[str, float]], tasks_done: int) -> None:
        """Continue an interrupted stream: its earlier measurements and the number of tasks it trained."""
        self.history = [dict(h) for h in history]
        self.task = int(tasks_done)

    def _record(self, state, model) -> None:
        values = self.measure(model)
        entry = {"task": self.task, "step": state.global_step, **{k: round(v, 6) for k, v in values.items()}}
        self.history.append(entry)
        state.log_history.append(dict(entry))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.task += 1
        if self.base is None and model is not None:
            self.base = [lp for lp, _ in self._logprobs(model)]

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.every and model is not None and state.global_step % self.every == 0:
            self._record(state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self._record(state, model)


__all__ = ["ForgettingMonitor"]
