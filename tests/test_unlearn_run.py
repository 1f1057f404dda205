"""`hfcl unlearn` / `unlearn()` end to end on the tiny embedded world: presets per method, defaults that forget,
before/after line, hfcl's card, the caller's config untouched, no hidden folder left, and a resume that resumes."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file
from transformers import SchedulerType

from hfcl.unlearn import UnlearningConfig
from hfcl.unlearn.cli import main as unlearn_main
from hfcl.unlearn.methods import METHODS

QUIET = ["--disable_tqdm", "true", "--report_to", "none"]


# ---- presets -------------------------------------------------------------------------------------------------------

def test_every_method_has_a_demo_preset_of_its_own_fields():
    fields = {f for f in UnlearningConfig.__dataclass_fields__}
    for method in METHODS.values():
        assert "demo" in method.presets, method.name
        assert set(method.presets["demo"]) <= fields, method.name


def test_preset_is_the_chosen_methods_recipe_applied_before_validation(tmp_path):
    undial = UnlearningConfig(output_dir=str(tmp_path), method="UNDIAL", preset="demo", report_to="none")
    assert undial.beta is None  # UNDIAL keeps its own β=10; NPO's demo β=1 is not written into it
    assert {k: getattr(undial, k) for k in METHODS["UNDIAL"].presets["demo"]
            if k != "lr_scheduler_type"} == {k: v for k, v in METHODS["UNDIAL"].presets["demo"].items()
                                             if k != "lr_scheduler_type"}
    assert undial.lr_scheduler_type is SchedulerType.CONSTANT  # TrainingArguments validated the preset's value
    npo = UnlearningConfig(output_dir=str(tmp_path), method="npo", preset="demo", report_to="none")
    assert (npo.beta, npo.alpha, npo.learning_rate, npo.num_train_epochs) == (1.0, 2.0, 2e-3, 12)
    mine = UnlearningConfig(output_dir=str(tmp_path), method="NPO", preset="demo", beta=0.3, learning_rate=1e-4,
                            report_to="none")
    assert (mine.beta, mine.learning_rate, mine.alpha) == (0.3, 1e-4, 2.0)  # given values win
    plain = UnlearningConfig(output_dir=str(tmp_path), method="NPO", preset="none", report_to="none")
    assert plain.learning_rate == 1e-5 and plain.beta is None


def test_output_dir_default_names_the_method():
    assert UnlearningConfig(method="simnpo", report_to="none").output_dir == "hfcl-runs/unlearn-SimNPO"


# ---- the README command on the embedded target ---------------------------------------------------------------------

def test_readme_command_forgets_on_the_embedded_target(tiny_zoo, tmp_path, monkeypatch, capsys):
    """`hfcl unlearn --method NPO --retain_loss nll --lora` with no rate: the demo recipe, a visible change."""
    monkeypatch.chdir(tmp_path)
    assert unlearn_main(["--model", str(tiny_zoo.path("target")), "--method", "NPO", "--retain_loss", "nll",
                         "--lora", *QUIET]) == 0
    out = tmp_path / "hfcl-runs" / "unlearn-NPO"
    run = json.loads((out / "hfcl_run.json").read_text())
    assert run["config"]["preset"] == "demo" and run["config"]["learning_rate"] == 2e-3
    before, after = run["forget_check"]["before"], run["forget_check"]["after"]
    assert before["forget_rouge_l"] > 0.8 and after["forget_rouge_l"] < before["forget_rouge_l"] - 0.3
    assert after["forget_answer_prob"] < before["forget_answer_prob"] - 0.2
    printed = capsys.readouterr().out
    assert f"forget ROUGE-L {before['forget_rouge_l']:.3f} -> {after['forget_rouge_l']:.3f}" in printed
    card = (out / "README.md").read_text()
    assert "More Information Needed" not in card and "hfcl unlearn" in card and "NPO" in card
    assert [p.name for p in (tmp_path / "hfcl-runs").iterdir()] == ["unlearn-NPO"]  # no hidden folder left
    from hfcl.utils.io import current_umask

    mode = 0o666 & ~current_umask()  # a shared run folder is readable (safetensors alone would write 0600)
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()} == {
        p.name: mode for p in out.iterdir() if p.is_file()}


def test_nothing_moved_is_a_warning_and_the_callers_config_is_untouched(tiny_zoo, tmp_path, monkeypatch):
    import hfcl.hub
    from hfcl.unlearn import run as run_module

    warnings: list[str] = []
    monkeypatch.setattr(run_module.logger, "warning", lambda msg, *a: warnings.append(msg % a))
    pushed = []
    monkeypatch.setattr(hfcl.hub, "push_training_output",
                        lambda cfg, out, repo_id: pushed.append(repo_id) or type("R", (), {"repo_id": repo_id,
                                                                                         "files": []})())
    config = UnlearningConfig(output_dir=str(tmp_path / "still"), method="GradDiff", preset="none",
                              learning_rate=1e-12, max_steps=1, per_device_train_batch_size=4, report_to="none",
                              disable_tqdm=True, push_to_hub=True, hub_model_id="me/still")
    before = config.to_dict()
    run_module.unlearn(run_module.UnlearnRunArgs(model=str(tiny_zoo.path("target"))), config)
    assert config.to_dict() == before and config.output_dir == str(tmp_path / "still") and config.push_to_hub
    assert pushed == ["me/still"]
    assert any("changed nothing measurable" in w for w in warnings)


# ---- failures and resume -------------------------------------------------------------------------------------------

def _stop_at(monkeypatch, step: int):
    from hfcl.unlearn.trainer import UnlearningTrainer

    original = UnlearningTrainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step >= step:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UnlearningTrainer, "training_step", training_step)


def test_failed_run_without_checkpoints_leaves_no_hidden_folder(tiny_zoo, tmp_path, monkeypatch):
    _stop_at(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        unlearn_main(["--model", str(tiny_zoo.path("target")), "--max_steps", "2", "--learning_rate", "1e-3",
                      "--output_dir", str(tmp_path / "run"), "--forget_check", "false", *QUIET])
    assert list(tmp_path.iterdir()) == []


def test_resume_through_the_cli_reaches_the_uninterrupted_run(tiny_zoo, tmp_path, monkeypatch):
    def argv(name):
        return ["--model", str(tiny_zoo.path("target")), "--method", "NPO", "--max_steps", "4",
                "--per_device_train_batch_size", "4", "--learning_rate", "2e-3", "--save_strategy", "steps",
                "--save_steps", "2", "--logging_steps", "1", "--lora_target_modules", "q_proj,v_proj",
                "--forget_check", "false", "--output_dir", str(tmp_path / name), *QUIET]

    assert unlearn_main(argv("full")) == 0
    with monkeypatch.context() as patch:
        _stop_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            unlearn_main(argv("resumed"))
    work = tmp_path / ".resumed.checkpoints"
    assert (work / "checkpoint-2" / "reference_logps.safetensors").is_file()
    assert not (tmp_path / "resumed").exists()
    from hfcl.unlearn.trainer import UnlearningTrainer

    calls, original = [], UnlearningTrainer.training_step
    monkeypatch.setattr(UnlearningTrainer, "training_step",
                        lambda self, *a, **k: calls.append(self.state.global_step) or original(self, *a, **k))
    assert unlearn_main(argv("resumed") + ["--resume_from_checkpoint", "last"]) == 0
    assert calls == [2, 3], "the resumed run trains only the steps after the checkpoint"
    assert not work.exists()
    full, resumed = load_file(str(tmp_path / "full" / "adapter_model.safetensors")), load_file(
        str(tmp_path / "resumed" / "adapter_model.safetensors"))
    for name, value in full.items():
        assert (resumed[name] - value).abs().max() < 1e-6, name

    def logged(name):
        history = json.loads((tmp_path / name / "hfcl_run.json").read_text())["log_history"]
        return {e["step"]: (e["forget_loss"], e["retain_loss"]) for e in history if "forget_loss" in e}

    assert logged("resumed")[3] == pytest.approx(logged("full")[3], rel=1e-4)
    assert logged("resumed")[4] == pytest.approx(logged("full")[4], rel=1e-4)
