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
def test_demo_on_reduced_config(tiny_zoo, capsys):
    code = main(["demo", "--preset", "tiny", "--n_questions", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "forget questions" in out and "retain questions" in out and "mean ROUGE-L" in out
