"""Config loading from YAML with CLI overrides, help texts, and the demo on a reduced config."""

from __future__ import annotations

import pytest

from hfcl.cli import COMMANDS, main
from hfcl.config import load_config, parse_args
from hfcl.demo import DemoArguments
from hfcl.errors import ConfigError
from hfcl.zoo import ZooConfig


def test_yaml_values_and_cli_overrides(tmp_path):
    cfg_file = tmp_path / "demo.yaml"
    cfg_file.write_text("n_questions: 7\nhidden_size: 64\nforget_split: forget05\n")
    args, zoo = parse_args([DemoArguments, ZooConfig], ["--config", str(cfg_file), "--n_questions", "2"],
                           prog="t", description="t")
    assert args.n_questions == 2  # the flag wins over YAML
    assert args.forget_split == "forget05" and zoo.hidden_size == 64


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text("n_question: 3\n")
    with pytest.raises(ConfigError) as info:
        parse_args([DemoArguments, ZooConfig], ["--config", str(cfg_file)], prog="t", description="t")
    message = str(info.value)
    assert "n_question" in message and "did you mean 'n_questions'" in message and "hidden_size" in message
    with pytest.raises(ConfigError, match="Valid keys"):
        load_config(ZooConfig, {"hiden_size": 3})


def test_invalid_value_is_a_config_error():
    with pytest.raises(ConfigError, match="divisible"):
        load_config(ZooConfig, {"hidden_size": 30, "num_attention_heads": 4})


def test_help_explains_every_option(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "--" in text, command
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    demo_help = capsys.readouterr().out
    for option in ("--forget_split", "--n_questions", "--preset", "--hidden_size", "--config"):
        assert option in demo_help


def test_unknown_command_and_flag_fail(capsys):
    with pytest.raises(SystemExit):
        main(["no-such-command"])
    with pytest.raises(SystemExit):
        main(["demo", "--no_such_flag", "1"])


@pytest.mark.slow
def test_demo_on_reduced_config(tiny_zoo, capsys, tmp_path):
    """The whole story on the tiny zoo: every chapter runs, the unlearned model forgets, the card is written."""
    from hfcl.demo import DemoArguments, run_demo

    args = DemoArguments(n_questions=2, output_dir=str(tmp_path / "demo"))
    results = run_demo(args, tiny_zoo.config)
    out = capsys.readouterr().out
    for text in ("forget questions", "retain questions", "mean ROUGE-L", "Forget on request", "negation",
                 "base-v2", "Learn continually", "Forget events", "TOFU forget10", "Eval card written"):
        assert text in out, text
    continual = results["continual"]  # replay + EWC forgets less than naive; the deletion request deletes
    assert continual["replay + ewc"]["forgetting"] < 0.5 * continual["naive"]["forgetting"], continual
    (event,) = continual["replay + ewc, then forget"]["forget_events"]
    assert event["forgotten_after"] < 0.5 * event["forgotten_before"] and event["kept_after"] > event["forgotten_after"]
    assert (tmp_path / "demo" / "continual" / "accuracy_matrix.json").is_file()
    target, unlearned = results["target"], results["unlearned"]
    assert unlearned["forget"]["mean_rouge"] <= 0.5 * target["forget"]["mean_rouge"]
    assert unlearned["retain"]["mean_rouge"] >= 0.8 * target["retain"]["mean_rouge"]
    reports = results["reports"]
    assert reports["unlearned"].aggregates["forget_quality"] > reports["target"].aggregates["forget_quality"]
    card = (tmp_path / "demo" / "unlearned" / "README.md").read_text()
    assert "model-index" in card and "forget_quality" in card
    assert (tmp_path / "demo" / "unlearned" / "model.safetensors").is_file()


def test_demo_cli_and_bad_steps(tiny_zoo, capsys, tmp_path):
    assert main(["demo", "--preset", "tiny", "--n_questions", "1", "--steps", "", "--output_dir",
                 str(tmp_path)]) == 0
    assert "mean ROUGE-L" in capsys.readouterr().out
    assert main(["demo", "--preset", "tiny", "--steps", "unlearn,fly"]) == 2
    assert "fly" in capsys.readouterr().err
