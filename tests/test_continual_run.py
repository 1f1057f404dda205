"""The stream runner and ``hfcl continual`` on the tiny stream: ordering bars, resuming, the run directory, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import TrainerCallback

from hfcl.continual import ContinualConfig, run_stream, score_tasks, world_stream

# Full fine-tuning of the tiny base: a task is learned in a few seconds, and plainly forgotten by the next ones.
FAST = {"learning_rate": 3e-3, "num_train_epochs": 10, "per_device_train_batch_size": 8, "use_cpu": True,
        "disable_tqdm": True, "seed": 0, "logging_steps": 1000, "per_device_eval_batch_size": 32}


def lora(r: int = 8):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")


def run(tiny_zoo, tmp_path, strategy, n_tasks=3, peft=None, write=False, **kw):
    stream = world_stream(tiny_zoo.config, n_tasks=n_tasks, authors_per_task=1, probe_size=5)
    model, tok = tiny_zoo.load("base")
    config = ContinualConfig(output_dir=str(tmp_path / strategy.replace(",", "+")), strategy=strategy,
                             **{**FAST, **kw})
    return run_stream(stream, config, model, tok, peft_config=peft, write=write, overwrite=True)


@pytest.mark.slow
def test_ordering_bars_on_the_tiny_stream(tiny_zoo, tmp_path):
    """Naive forgets (>= 0.2); replay with 10 % of examples, EWC and O-LoRA each forget less."""
    naive = run(tiny_zoo, tmp_path, "naive")
    f = {"naive": naive.summary["forgetting"]}
    assert f["naive"] >= 0.2, naive.R
    assert min(naive.R[k + 1][k] for k in range(3)) > 0.3  # every task is learned first
    f["replay"] = run(tiny_zoo, tmp_path, "replay", replay_ratio=0.1).summary["forgetting"]
    f["ewc"] = run(tiny_zoo, tmp_path, "ewc", ewc_lambda=10.0).summary["forgetting"]
    olora = run(tiny_zoo, tmp_path, "olora", peft=lora(), learning_rate=1e-2, write=True)
    f["olora"] = olora.summary["forgetting"]
    assert f["replay"] < f["naive"] and f["ewc"] < f["naive"] and f["olora"] < f["naive"], f
    # the O-LoRA run directory holds one adapter, the exact sum of the per-task ones: it scores like the last row
    from hfcl.zoo import load_model

    model, tok = load_model(str(olora.output_dir))
    stream = world_stream(tiny_zoo.config, n_tasks=3, authors_per_task=1, probe_size=5)
    again = score_tasks(model, tok, stream.tasks, distributed=False)
    assert np.allclose(again, olora.R[-1], atol=1e-4)


@pytest.mark.slow
def test_resume_keeps_adam_moments_when_the_optimizer_is_not_reset(tiny_zoo, tmp_path):
    """reset_optimizer=False: AdamW's moments carry into the next task, and across an interruption at the boundary."""
    stream = world_stream(tiny_zoo.config, n_tasks=2, authors_per_task=1, probe_size=0)
    kw = {**FAST, "num_train_epochs": 3, "reset_optimizer": False}

    def go(out, resume=None, **extra):
        model, tok = tiny_zoo.load("base")
        return run_stream(stream, ContinualConfig(output_dir=str(out), resume_from_checkpoint=resume, **kw), model,
                          tok, **extra)

    full = go(tmp_path / "full")
    go(tmp_path / "a", stop_after=1)
    assert (tmp_path / ".a.work" / "stages" / "task-1-authors1" / "optimizer.pt").is_file()
    resumed = go(tmp_path / "a", resume="true")
    np.testing.assert_allclose(resumed.R, full.R, atol=1e-5)
    fresh = run(tiny_zoo, tmp_path, "naive", n_tasks=2, num_train_epochs=3)  # reset_optimizer=True: another path
    assert not np.allclose(fresh.R[-1], full.R[-1], atol=1e-4)


class Crash(TrainerCallback):
    """Interrupt task ``task`` after ``step`` optimizer steps (after its checkpoint was written)."""

    def __init__(self, task: int, step: int):
        self.task, self.step, self.calls = task, step, 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.calls += 1

    def on_save(self, args, state, control, **kwargs):
        if self.calls == self.task and state.global_step == self.step:
            raise KeyboardInterrupt("simulated interruption")


@pytest.mark.slow
def test_resume_mid_stream_reaches_the_same_matrix(tiny_zoo, tmp_path):
    stream = world_stream(tiny_zoo.config, n_tasks=3, authors_per_task=1, probe_size=5)
    kw = {**FAST, "num_train_epochs": 4, "strategy": "replay,ewc,lwf", "replay_ratio": 0.25, "ewc_lambda": 10.0,
          "save_strategy": "steps", "save_steps": 2}

    def go(out, resume=None, **extra):
        model, tok = tiny_zoo.load("base")
        config = ContinualConfig(output_dir=str(out), resume_from_checkpoint=resume, **kw)
        return run_stream(stream, config, model, tok, **extra)

    full = go(tmp_path / "full")
    # interrupted at a task boundary (after task 1), then resumed
    part = go(tmp_path / "a", stop_after=1)
    assert len(part.R) == 2 and (tmp_path / ".a.work" / "stages" / "task-1-authors1" / "stage.json").is_file()
    resumed = go(tmp_path / "a", resume="true")
    np.testing.assert_allclose(resumed.R, full.R, atol=1e-5)
    # the probe monitor keeps its history and its KL reference (the starting model, not the restored one)
    assert [(m["task"], m["step"]) for m in resumed.monitor] == [(m["task"], m["step"]) for m in full.monitor]
    np.testing.assert_allclose([m["probe_kl"] for m in resumed.monitor], [m["probe_kl"] for m in full.monitor],
                               atol=1e-4)
    # interrupted inside task 2 (after its step-2 checkpoint), then resumed from that checkpoint
    with pytest.raises(KeyboardInterrupt):
        go(tmp_path / "b", callbacks=[Crash(task=2, step=2)])
    assert (tmp_path / ".b.work" / "checkpoints" / "task-2-authors2" / "checkpoint-2").is_dir()
    resumed = go(tmp_path / "b", resume="true")
    np.testing.assert_allclose(resumed.R, full.R, atol=1e-4)
    buffer = resumed.trainer.strategies[0].buffer
    assert buffer == full.trainer.strategies[0].buffer and len(buffer) == 24  # all 3 x 8 rows (capacity 512)


def test_cli_writes_the_run_directory(tiny_zoo, tmp_path, capsys):
    from hfcl.cli import main
    from hfcl.hub.run_dir import read_run_dir

    out = tmp_path / "cl"
    rc = main(["continual", "--zoo", "tiny", "--preset", "demo", "--n_tasks", "2", "--authors_per_task", "1",
               "--probe_size", "5", "--num_train_epochs", "3", "--strategy", "replay,ewc", "--output_dir", str(out),
               "--disable_tqdm", "true", "--use_cpu", "true"])
    assert rc == 0
    shown = capsys.readouterr().out
    assert "Accuracy matrix R" in shown and "authors2" in shown
    data = json.loads((out / "accuracy_matrix.json").read_text())
    R = np.array(data["matrix"])
    assert data["tasks"] == ["authors1", "authors2"] and data["metric"] == "probability" and R.shape == (3, 2)
    assert data["acc"] == pytest.approx(R[2].mean())
    assert data["bwt"] == pytest.approx(R[2, 0] - R[1, 0])
    assert data["forgetting"] == pytest.approx(R[1, 0] - R[2, 0])
    assert data["fwt"] == pytest.approx(R[1, 1] - R[0, 1])
    assert len(data["probe"]["scores"]) == 3
    report = json.loads((out / "eval_report.json").read_text())
    assert report["suite"] == "continual" and report["aggregates"]["final_average_accuracy"] == pytest.approx(
        data["acc"])
    record = json.loads((out / "hfcl_run.json").read_text())
    assert record["command"] == "continual" and record["strategies"] == ["replay", "ewc"]
    assert (out / "plots" / "accuracy_matrix.png").stat().st_size > 1000
    for k, name in enumerate(["authors1", "authors2"]):
        assert (out / "stages" / f"task-{k + 1}-{name}" / "model.safetensors").is_file()
    assert not (tmp_path / ".cl.work").exists()
    assert read_run_dir(out).kind == "model"


def test_cli_config_file_errors_before_training(tiny_zoo, tmp_path, capsys):
    from hfcl.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path / 'x'}\nzoo: tiny\nstream:\n  tasks:\n    - name: a\n"
                      "      train: [{question: 'Q?', answer: 'A.'}]\n      metrc: rouge\n")
    assert main(["continual", "--config", str(config)]) == 2
    assert "did you mean 'metric'" in capsys.readouterr().err
    config.write_text(f"output_dir: {tmp_path / 'x'}\nzoo: tiny\nstrategy: olora\nlora: false\n")
    assert main(["continual", "--config", str(config)]) == 2
    assert "O-LoRA" in capsys.readouterr().err
    config.write_text(f"output_dir: {tmp_path / 'x'}\nzoo: tiny\nstrategy: replay\nreplay_ratio: 2\n")
    assert main(["continual", "--config", str(config)]) == 2
    assert "replay_ratio" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
