"""Early stopping without a retain model: the LOSS membership attack (forget vs holdout) decides when the forget set
looks unseen. A stopped run lands near the retain model's membership level (PrivLeak checked against the retain
model only afterwards, for the test); the same recipe without the rule overshoots."""

from __future__ import annotations

import json

import pytest

from hfcl.errors import ConfigError
from hfcl.unlearn import UnlearningConfig, UnlearningTrainer

RECIPE = {"method": "GradDiff", "learning_rate": 1e-4, "num_train_epochs": 60, "retain_loss": "nll",
          "per_device_train_batch_size": 8, "use_cpu": True, "report_to": "none", "disable_tqdm": True,
          "save_strategy": "no", "logging_steps": 1000, "lr_scheduler_type": "constant"}


def train(tiny_zoo, **extra):
    model, tok = tiny_zoo.load("target")
    splits = tiny_zoo.splits
    config = UnlearningConfig(output_dir="unused", **{**RECIPE, **extra})
    holdout = splits["holdout"] if config.early_stop_steps else None
    trainer = UnlearningTrainer(model, config, splits["forget"], splits["retain"], processing_class=tok,
                                holdout_dataset=holdout)
    trainer.train()
    return trainer, tok


@pytest.mark.slow
def test_membership_stop_lands_near_unseen_and_plain_training_overshoots(tiny_zoo):
    from hfcl.eval import evaluate_model

    stopped, tok = train(tiny_zoo, early_stop_steps=1, early_stop_tolerance=0.05)
    outcome = stopped.membership_stop.outcome
    assert outcome["reason"] == "membership" and outcome["membership_auc"] <= 0.55
    assert stopped.state.global_step == outcome["step"] < stopped.state.max_steps  # it stopped early
    checks = stopped.membership_stop.history
    assert checks[0]["membership_auc"] > 0.9 and len(checks) == outcome["step"] + 1  # the start, then every step
    report = evaluate_model((stopped.model, tok), world_config=tiny_zoo.config, reference_log="auto",
                            distributed=False)
    target = evaluate_model("target", world_config=tiny_zoo.config, reference_log="auto", distributed=False)
    leak, utility = report.aggregates["privleak"], report.aggregates["model_utility"]
    print(f"stopped at step {outcome['step']}: AUC {outcome['membership_auc']:.3f}, PrivLeak {leak:.1f}, MU "
          f"{utility / target.aggregates['model_utility']:.3f}x")
    assert abs(leak) <= 25  # measured +7 (target: about -90)
    assert utility >= 0.9 * target.aggregates["model_utility"]  # measured 0.96x
    plain, _ = train(tiny_zoo, max_steps=3 * outcome["step"])  # the same recipe, run on without the rule
    over = evaluate_model((plain.model, tok), world_config=tiny_zoo.config, reference_log="auto",
                          distributed=False).aggregates["privleak"]
    assert abs(over) > abs(leak) + 10, (over, leak)


def test_utility_floor_and_bad_input(tiny_zoo, tmp_path, capsys):
    trainer, _ = train(tiny_zoo, early_stop_steps=1, early_stop_utility_floor=0.999, learning_rate=1e-3,
                       max_steps=20)
    assert trainer.membership_stop.outcome["reason"] == "utility" and trainer.state.global_step < 20
    model, tok = tiny_zoo.load("target")
    with pytest.raises(ConfigError, match="holdout"):
        UnlearningTrainer(model, UnlearningConfig(output_dir="x", **RECIPE, early_stop_steps=2),
                          tiny_zoo.splits["forget"], tiny_zoo.splits["retain"], processing_class=tok)
    with pytest.raises(ConfigError, match="early_stop_tolerance"):
        UnlearningConfig(output_dir="x", early_stop_steps=2, early_stop_tolerance=0.7)
    from hfcl.cli import main

    forget = tmp_path / "f.jsonl"
    forget.write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    assert main(["unlearn", "--zoo", "tiny", "--forget_file", str(forget), "--early_stop_steps", "2",
                 "--output_dir", str(tmp_path / "out")]) == 2
    assert "--holdout_file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_records_the_stop(tiny_zoo, tmp_path, capsys):
    from hfcl.cli import main

    out = tmp_path / "gd"
    assert main(["unlearn", "--zoo", "tiny", "--method", "GradDiff", "--learning_rate", "1e-4", "--num_train_epochs",
                 "60", "--lr_scheduler_type", "constant", "--lora", "false", "--per_device_train_batch_size", "8",
                 "--early_stop_steps", "2", "--output_dir", str(out),
                 "--disable_tqdm", "true", "--use_cpu", "true"]) == 0
    assert "early stop at step" in capsys.readouterr().out
    record = json.loads((out / "hfcl_run.json").read_text())["early_stop"]
    assert record["stopped"]["reason"] == "membership" and record["every_steps"] == 2
    assert record["checks"][-1]["membership_auc"] <= 0.55
