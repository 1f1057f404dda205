"""A preset fills only the options the user did not give: typed flags, YAML keys and Python keywords win, even
when the value given equals the default (issue 11/12 follow-up)."""

from __future__ import annotations

import dataclasses

import pytest

from hfcl.config import parse_args
from hfcl.unlearn import UnlearningConfig
from hfcl.unlearn.config import explicit_options
from hfcl.unlearn.methods import METHODS
from hfcl.unlearn.run import UnlearnRunArgs, _run_recipe

QUIET = ["--report_to", "none"]
DEMO = METHODS["GradDiff"].presets["demo"]


def _recipe(argv):
    run, config = parse_args([UnlearnRunArgs, UnlearningConfig], [*argv, *QUIET], "hfcl unlearn", "test")
    return config, _run_recipe(run, config, None)


def test_the_demo_preset_changes_the_default_rate():  # the premise of the tests below
    assert DEMO["learning_rate"] != 1e-5
    assert UnlearningConfig(method="GradDiff", preset="demo", report_to="none").learning_rate == DEMO["learning_rate"]


def test_an_explicitly_typed_default_survives_the_preset():
    _, config = _recipe(["--method", "GradDiff", "--preset", "demo", "--learning_rate", "1e-5"])
    assert config.learning_rate == 1e-5  # the user's 1e-5, though it is the default
    assert config.num_train_epochs == DEMO["num_train_epochs"]  # the rest of the recipe still applies
    assert "learning_rate" not in config.preset_values


def test_a_yaml_default_survives_the_preset(tmp_path):
    yaml = tmp_path / "u.yaml"
    yaml.write_text("method: GradDiff\npreset: demo\nlearning_rate: 1.0e-5\nalpha: 1.0\n")
    _, config = _recipe(["--config", str(yaml)])
    assert (config.learning_rate, config.alpha) == (1e-5, 1.0)
    assert config.num_train_epochs == DEMO["num_train_epochs"]


def test_a_typed_default_rate_on_the_embedded_model_is_not_replaced_by_the_demo_recipe():
    _, config = _recipe(["--method", "GradDiff", "--learning_rate", "1e-5"])
    assert config.preset is None and config.learning_rate == 1e-5 and config.num_train_epochs == 3
    _, auto = _recipe(["--method", "GradDiff"])  # nothing given: the demo recipe
    assert auto.preset == "demo" and auto.learning_rate == DEMO["learning_rate"]


def test_the_caller_config_is_not_changed():
    parsed, config = _recipe(["--method", "GradDiff", "--preset", "demo", "--learning_rate", "1e-5"])
    assert config is not parsed


@pytest.mark.parametrize("kwargs", [{"learning_rate": 1e-5}, {"learning_rate": 1e-5, "alpha": 1.0}])
def test_python_keywords_are_explicit(kwargs):
    config = UnlearningConfig(method="GradDiff", preset="demo", report_to="none", **kwargs)
    assert {k: getattr(config, k) for k in kwargs} == kwargs
    assert config.num_train_epochs == DEMO["num_train_epochs"]
    assert explicit_options(config) == {"method", "preset", "report_to", *kwargs}


def test_dataclasses_replace_falls_back_to_the_defaults_rule():
    base = UnlearningConfig(method="GradDiff", report_to="none", learning_rate=1e-4)
    demo = dataclasses.replace(base, preset="demo")
    assert explicit_options(demo) is None
    assert demo.learning_rate == 1e-4 and demo.num_train_epochs == DEMO["num_train_epochs"]


def test_a_run_folder_written_by_the_unlearn_path_has_umask_modes(tmp_path, tiny_tokenizer):
    """``save_run_dir`` with umask 022: 0644 files although safetensors writes its weights 0600."""
    import os

    import torch
    from safetensors.torch import save_file

    from hfcl.unlearn.run import save_run_dir

    class Trainer:  # what matters here is the writer, not the training
        def save_model(self, folder):
            save_file({"w": torch.zeros(2)}, os.path.join(folder, "adapter_model.safetensors"))

    saved = os.umask(0o022)
    try:
        save_run_dir(tmp_path / "run", Trainer(), tiny_tokenizer, {"method": "NPO"}, overwrite=False, card=False)
    finally:
        os.umask(saved)
    out = tmp_path / "run"
    modes = {p.relative_to(out).as_posix(): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert "adapter_model.safetensors" in modes and "hfcl_run.json" in modes
    assert set(modes.values()) == {0o644}, modes
    assert out.stat().st_mode & 0o777 == 0o755


# ---- console: a bar, no log dicts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("disable_tqdm", [False, True])
def test_quiet_console_keeps_a_bar_and_prints_no_log_dicts(tmp_path, capsys, disable_tqdm):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from hfcl.unlearn.trainer import QuietProgress, quiet_console

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    data = [{"input_ids": torch.arange(8), "labels": torch.arange(8)} for _ in range(4)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, logging_steps=1, report_to="none",
                             use_cpu=True, disable_tqdm=disable_tqdm, save_strategy="no")
    trainer = quiet_console(Trainer(model=model, args=args, train_dataset=data))
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert PrinterCallback not in kinds and ProgressCallback not in kinds
    assert (QuietProgress in kinds) is not disable_tqdm  # the bar stays unless the user turned it off
    trainer.train()
    captured = capsys.readouterr()
    assert "train_runtime" not in captured.out + captured.err and "{'loss'" not in captured.out + captured.err
    assert ("2/2" in captured.err) is not disable_tqdm  # the bar ran to the end
    assert any("train_runtime" in entry for entry in trainer.state.log_history)  # the metrics are still there


def test_demo_quiet_libraries_keeps_unknown_warnings_visible():
    import warnings

    from hfcl.demo import quiet_libraries
    from hfcl.utils.logging import KNOWN_HARMLESS_WARNINGS

    assert KNOWN_HARMLESS_WARNINGS  # those, and only those, are silenced by silence_known_noise
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_libraries():
            warnings.warn("a new deprecation hfcl does not know about", FutureWarning, stacklevel=1)
            warnings.warn("a new user warning", UserWarning, stacklevel=1)
    assert {str(w.message) for w in seen} >= {"a new deprecation hfcl does not know about", "a new user warning"}
