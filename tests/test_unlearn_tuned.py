"""The tuned presets (searched by benchmarks/preset_search.py): all weights, the membership stopping rule, LoRA off
unless asked for, and a clear error when a user forget file comes without holdout rows."""

from __future__ import annotations

import json

import pytest

from hfcl.config import parse_args
from hfcl.errors import ConfigError
from hfcl.unlearn import UnlearningConfig
from hfcl.unlearn.cli import main as unlearn_main
from hfcl.unlearn.methods import FULL_WEIGHT_PRESETS, METHODS
from hfcl.unlearn.run import UnlearnRunArgs, recipe_adapter, _run_recipe

QUIET = ["--disable_tqdm", "true", "--report_to", "none"]


def test_tuned_presets_stop_by_the_membership_rule_and_name_only_config_fields():
    fields = set(UnlearningConfig.__dataclass_fields__)
    tuned = [m for m in METHODS.values() if "tuned" in m.presets]
    assert {m.name for m in tuned} >= {"NPO", "GradDiff"}  # the bar: NPO and others searched to pass
    for method in tuned:
        assert set(method.presets["tuned"]) <= fields, method.name
        assert method.presets["tuned"]["early_stop_steps"] >= 1, method.name
    assert "tuned" in FULL_WEIGHT_PRESETS


def _parsed(argv):
    run, config = parse_args([UnlearnRunArgs, UnlearningConfig], [*argv, *QUIET], "hfcl unlearn", "test")
    return run, _run_recipe(run, config, None)


def test_tuned_turns_lora_off_unless_lora_is_given():
    run, config = _parsed(["--method", "NPO", "--preset", "tuned"])
    assert run.lora and not recipe_adapter(run, config).lora
    run, config = _parsed(["--method", "NPO", "--preset", "tuned", "--lora", "true"])
    assert recipe_adapter(run, config).lora  # the user's explicit choice wins
    run, config = _parsed(["--method", "NPO", "--preset", "demo"])
    assert recipe_adapter(run, config).lora  # only full-weight presets change it


def test_tuned_with_a_forget_file_and_no_holdout_is_an_error_before_loading(tmp_path):
    rows = tmp_path / "forget.jsonl"
    rows.write_text(json.dumps({"question": "q?", "answer": "a."}) + "\n")
    with pytest.raises(ConfigError, match=r"early_stop_steps 1 \(the preset sets it\).*--holdout_file"):
        unlearn_main(["--model", str(tmp_path / "no-such-model"), "--method", "NPO", "--preset", "tuned",
                      "--forget_file", str(rows), "--retain_file", str(rows), "--output_dir", str(tmp_path / "o"),
                      *QUIET])
    assert not (tmp_path / "o").exists()


def test_tuned_npo_through_the_cli_trains_all_weights_and_stops_when_forget_looks_unseen(tiny_zoo, tmp_path):
    out = tmp_path / "npo"
    assert unlearn_main(["--model", str(tiny_zoo.path("target")), "--method", "NPO", "--preset", "tuned",
                         "--output_dir", str(out), *QUIET]) == 0
    run = json.loads((out / "hfcl_run.json").read_text())
    assert run["config"]["lora"] is False and (out / "model.safetensors").is_file()
    assert not (out / "adapter_config.json").exists()
    stop = run["early_stop"]
    assert stop["stopped"]["reason"] == "membership"
    assert stop["checks"][-1]["membership_auc"] <= 0.5 + METHODS["NPO"].presets["tuned"]["early_stop_tolerance"]
    assert stop["checks"][0]["membership_auc"] > 0.8  # it started out remembering
    before, after = run["forget_check"]["before"], run["forget_check"]["after"]
    assert after["forget_answer_prob"] < before["forget_answer_prob"] - 0.1
