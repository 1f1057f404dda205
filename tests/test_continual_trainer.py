"""ContinualTrainer under the Trainer's real conditions: every strategy's term counted once per optimizer step.

The update of one optimizer step with gradient accumulation 4 x 2 must equal the one of 1 x 8 on the same 8
examples, for every strategy: the gradients are read just before the optimizer step (no clipping), at the first step
of the second task, after a small seeded perturbation of the weights so that every regularizer is active.
"""

from __future__ import annotations

import pytest
import torch
from transformers import TrainerCallback

from hfcl.continual import ContinualConfig, ContinualTrainer, world_stream
from hfcl.errors import ConfigError

STRENGTHS = {"ewc_lambda": 1e3, "l2_lambda": 1e2, "lwf_alpha": 1.0, "olora_lambda_orth": 1.0,
             "olora_lambda_l2": 0.5, "ema_decay": 0.5}


def lora():
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0,
                      task_type="CAUSAL_LM")


class Capture(TrainerCallback):
    """Perturb the trainable weights when a task begins (seeded); keep the gradients of its first step."""

    def __init__(self):
        self.grads: dict[str, torch.Tensor] = {}
        self.active = False

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.active:
            gen = torch.Generator().manual_seed(123)
            with torch.no_grad():
                for _, p in sorted(model.named_parameters()):
                    if p.requires_grad:
                        p.add_(0.01 * torch.randn(p.shape, generator=gen))

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.active and not self.grads:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def second_task_grads(tiny_zoo, tmp_path, strategy: str, per_device: int, ga: int, peft: bool):
    stream = world_stream(tiny_zoo.config, n_tasks=2, authors_per_task=1, probe_size=0)
    model, tok = tiny_zoo.load("base")
    args = ContinualConfig(output_dir=str(tmp_path / f"{strategy}-{ga}"), strategy=strategy,
                           per_device_train_batch_size=per_device, gradient_accumulation_steps=ga, max_steps=1,
                           learning_rate=1e-2, optim="sgd", max_grad_norm=0.0, lr_scheduler_type="constant",
                           use_cpu=True, seed=0, disable_tqdm=True, logging_steps=1, replay_ratio=1.0,
                           per_device_eval_batch_size=8, **STRENGTHS)
    capture = Capture()
    trainer = ContinualTrainer(model, args, processing_class=tok, peft_config=lora() if peft else None,
                               callbacks=[capture])
    trainer.train_task(0, stream.tasks[0].train, "a")
    capture.active = True
    rows = stream.tasks[1].train
    if strategy == "replay":  # 8 examples in the step either way: 6 new + 2 replayed
        args.replay_ratio = 2 / 6
        rows = rows[:6]
    trainer.train_task(1, rows, "b")
    logged = [h for h in trainer.state.log_history if "loss" in h]
    return capture.grads, logged[-1]


CASES = [("naive", False), ("replay", False), ("ewc", False), ("online_ewc", False), ("l2", False), ("lwf", False),
         ("lwf", True), ("olora", True), ("ema", False)]


@pytest.mark.parametrize("strategy,peft", CASES, ids=[f"{s}{'-peft' if p else ''}" for s, p in CASES])
def test_accumulation_4x2_equals_1x8(tiny_zoo, tmp_path, strategy, peft):
    g1, log1 = second_task_grads(tiny_zoo, tmp_path, strategy, 8, 1, peft)
    g4, log4 = second_task_grads(tiny_zoo, tmp_path, strategy, 2, 4, peft)
    assert g1 and set(g1) == set(g4)
    scale = max(float(g.abs().max()) for g in g1.values())
    worst = max(float((g1[n] - g4[n]).abs().max()) for n in g1)
    assert worst <= 1e-4 * scale, f"{strategy}: max grad difference {worst:.3g} vs max grad {scale:.3g}"
    terms = {"ewc": ["ewc"], "online_ewc": ["online_ewc"], "l2": ["l2"], "lwf": ["lwf"],
             "olora": ["olora_orth", "olora_l2"]}.get(strategy, [])
    for term in terms:  # the term is really there, and logged the same per step
        assert log1[term] > 0 and log4[term] == pytest.approx(log1[term], rel=1e-3)


def test_olora_needs_peft(tiny_zoo, tmp_path):
    model, tok = tiny_zoo.load("base")
    with pytest.raises(ConfigError, match="O-LoRA.*peft_config"):
        ContinualTrainer(model, ContinualConfig(output_dir=str(tmp_path), strategy="olora", use_cpu=True),
                         processing_class=tok)


def test_snapshots_are_parameter_copies_not_models(tiny_zoo, tmp_path):
    """Teachers and anchors are tensors of the unwrapped parameters; the adapter-disabled base holds nothing."""
    stream = world_stream(tiny_zoo.config, n_tasks=1, authors_per_task=1, probe_size=0)
    model, tok = tiny_zoo.load("base")
    args = ContinualConfig(output_dir=str(tmp_path / "x"), strategy="lwf,l2", max_steps=1, use_cpu=True,
                           disable_tqdm=True, lwf_teacher="previous")
    trainer = ContinualTrainer(model, args, processing_class=tok)
    trainer.train_task(0, stream.tasks[0].train)
    lwf, l2 = trainer.strategies
    assert all(isinstance(v, torch.Tensor) and not isinstance(v, torch.nn.Parameter) for v in lwf.teacher.values())
    assert set(l2.anchor) == set(trainer.trainable_params())
    model, tok = tiny_zoo.load("base")
    args = ContinualConfig(output_dir=str(tmp_path / "y"), strategy="lwf", max_steps=1, use_cpu=True,
                           disable_tqdm=True, lwf_teacher="base")
    trainer = ContinualTrainer(model, args, processing_class=tok, peft_config=lora())
    trainer.train_task(0, stream.tasks[0].train)
    assert trainer.strategies[0].use_disabled_adapter and trainer.strategies[0].teacher is None


def test_optimizer_reset_option(tiny_zoo, tmp_path):
    stream = world_stream(tiny_zoo.config, n_tasks=2, authors_per_task=1, probe_size=0)
    for reset, expected in ((True, 1), (False, 2)):
        model, tok = tiny_zoo.load("base")
        args = ContinualConfig(output_dir=str(tmp_path / str(reset)), max_steps=1, use_cpu=True, disable_tqdm=True,
                               reset_optimizer=reset)
        trainer = ContinualTrainer(model, args, processing_class=tok)
        for k in range(2):
            trainer.train_task(k, stream.tasks[k].train)
        state = next(iter(trainer.optimizer.state.values()))
        assert int(state["step"]) == expected  # AdamW moments kept across tasks only without reset
        assert trainer.args.output_dir == str(tmp_path / str(reset) / "task-2-task2")  # no checkpoint-N clash
