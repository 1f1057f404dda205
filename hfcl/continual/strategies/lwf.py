"""LwF / KL to a frozen teacher on the new task's answer tokens (Li & Hoiem 2016; research/continual.md §3.5).

Term: ``α · T² · Σ_tokens KL(softmax(z_teacher/T) ‖ softmax(z/T))`` over answer tokens, divided by the answer tokens
of the whole optimizer step (the trainer's helper), so it is an average per token like the task loss.

The teacher is never a copy of a (possibly wrapped) model:

* ``lwf_teacher="previous"``: the same module run with the parameters it had before the current task, through
  ``torch.func.functional_call`` on the unwrapped model (only the trainable parameters are stored: a LoRA's, or the
  full model's for full fine-tuning);
* ``lwf_teacher="base"``: under PEFT the model with its adapters disabled (nothing stored at all); otherwise the
  parameters before the first task, as above.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...utils.distributed import engine, require_engine
from .base import Strategy, Term, snapshot

IGNORE_INDEX = -100


def answer_kl_sum(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                  temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T² · Σ KL(p_teacher ‖ p_student), n_tokens)`` over the positions that predict an answer token."""
    mask = labels[:, 1:] != IGNORE_INDEX
    s = student_logits[:, :-1][mask].float() / temperature
    t = teacher_logits[:, :-1][mask].float() / temperature
    log_t = F.log_softmax(t, dim=-1)
    kl = (log_t.exp() * (log_t - F.log_softmax(s, dim=-1))).sum()
    return kl * temperature ** 2, mask.sum()


def teacher_logits(trainer, params: dict[str, torch.Tensor] | None, inputs: dict) -> torch.Tensor:
    """Logits of the teacher: the unwrapped model with ``params`` swapped in, or adapter-disabled if None."""
    model = trainer.unwrapped
    forward = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        if params is None:
            with model.disable_adapter():
                return model(**forward).logits
        return torch.func.functional_call(model, params, args=(), kwargs=forward, strict=False).logits


class LwF(Strategy):
    """Distil the teacher's next-token distribution on the new task's answer positions."""

    name = "lwf"

    def __init__(self, args) -> None:
        super().__init__(args)
        self.teacher: dict[str, torch.Tensor] | None = None
        self.use_disabled_adapter = False

    def setup(self, trainer):
        self.use_disabled_adapter = self.args.lwf_teacher == "base" and trainer.is_peft
        if not self.use_disabled_adapter:  # the teacher runs on stored weights, read outside the model's forward
            require_engine(engine(trainer.accelerator), {f"lwf_teacher={self.args.lwf_teacher}": (("zero3",), (
                "the teacher is the model run with weights stored before the task, and under ZeRO-3 a weight "
                "outside its module's forward is an empty placeholder (use LoRA with lwf_teacher=base)"))})

    def begin_task(self, trainer, task_index):
        if self.use_disabled_adapter:
            return
        if self.args.lwf_teacher == "previous" or self.teacher is None:
            dtype_params = trainer.trainable_params()
            self.teacher = {n: v.to(p.dtype) for (n, v), p in zip(snapshot(dtype_params).items(),
                                                                  dtype_params.values())}

    def penalty(self, trainer, model, inputs, outputs):
        logits = teacher_logits(trainer, None if self.use_disabled_adapter else self.teacher, inputs)
        kl, _ = answer_kl_sum(outputs.logits, logits, inputs["labels"], self.args.lwf_temperature)
        return [Term(self.name, self.args.lwf_alpha * kl, kind="token")]

    def state_dict(self):
        return {"has_teacher": self.teacher is not None,
                "tensors": {f"teacher.{n}": v for n, v in (self.teacher or {}).items()}}

    def load_state_dict(self, state):
        if state.get("has_teacher"):
            self.teacher = {n[len("teacher."):]: v for n, v in state.get("tensors", {}).items()}
