"""Bad input at the command line gets one clear message before any work; Ctrl-C ends with one line and code 130;
old spellings still parse, with one deprecation line each."""

from __future__ import annotations

import json

import pytest
import torch

from hfcl.cli import COMMANDS, main
from hfcl.config import given_fields, parse_args


def interrupting_command(argv):
    raise KeyboardInterrupt


def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "boom", (f"{__name__}:interrupting_command", "raises KeyboardInterrupt"))
    assert main(["boom", "--anything"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "interrupted\n" and "Traceback" not in captured.out


def test_unknown_flag_suggests_the_close_one(capsys):
    with pytest.raises(SystemExit) as info:
        main(["compose", "a + b", "--adaptr", "a=x", "--output_dir", "x"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--adaptr" in err and "did you mean --adapter?" in err
    with pytest.raises(SystemExit):
        main(["eval", "--model", "target", "--retain_log", "auto"])
    assert "did you mean --retain_logs?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evl", "--model", "target"])
    assert "did you mean 'eval'?" in capsys.readouterr().err


@pytest.mark.parametrize("argv,flag", [
    (["unlearn", "--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1"),
    (["unlearn", "--learning_rate", "-1e-5"], "--learning_rate must be >= 0"),
    (["negate", "--batch_size", "0"], "--per_device_train_batch_size must be at least 1"),
    (["eval", "--model", "target", "--per_device_eval_batch_size", "0", "--output_dir", "x"],
     "--per_device_eval_batch_size must be at least 1"),
    (["transfer", "task", "--output_dir", "x", "--learning_rate", "-3"], "--learning_rate must be >= 0"),
])
def test_out_of_range_numbers_are_config_errors(argv, flag, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert flag in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize("command", [
    ["compose", "a", "--adapter", "a=unused"], ["extract-lora", "--model", "target", "--base", "base"],
    ["negate"], ["unlearn"], ["eval", "--model", "target"], ["transfer", "task"], ["demo", "--steps", ""],
])
def test_unwritable_output_folder_is_refused_before_work(command, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main([*command, "--output_dir", str(blocker / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot be created" in err and "a-file" in err, err


def _adapter_dir(tmp_path, name="adapter"):
    from safetensors.torch import save_file

    folder = tmp_path / name
    folder.mkdir()
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
              "base_model_name_or_path": None, "fan_in_fan_out": False, "use_rslora": False}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": torch.ones(2, 8),
               "base_model.model.layers.0.q_proj.lora_B.weight": torch.ones(8, 2)},
              str(folder / "adapter_model.safetensors"))
    return folder


def _damage(folder, how):
    if how == "truncated weights":
        path = folder / "adapter_model.safetensors"
        path.write_bytes(path.read_bytes()[:-20])
    elif how == "random weights":
        path = folder / "adapter_model.safetensors"
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path = folder / "adapter_config.json"
        path.write_text(path.read_text()[:25])
    return path.name


@pytest.mark.parametrize("how", ["truncated weights", "random weights", "truncated config"])
def test_damaged_adapter_files_are_named_in_compose_and_eval(how, tmp_path, capsys):
    good = _adapter_dir(tmp_path, "good")
    assert main(["compose", "2*a", "--adapter", f"a={good}", "--output_dir", str(tmp_path / "ok")]) == 0
    bad = _adapter_dir(tmp_path)
    name = _damage(bad, how)
    capsys.readouterr()
    assert main(["compose", "a", "--adapter", f"a={bad}", "--output_dir", str(tmp_path / "out")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert name in err and ("truncated" in err or "not valid JSON" in err), err
    assert not (tmp_path / "out").exists()
    for argv in (["--model", str(bad)], ["--model", "target", "--adapter", str(bad)]):
        assert main(["eval", *argv, "--output_dir", str(tmp_path / "eval")]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert name in err, err


def test_old_spellings_parse_with_one_deprecation_line_each(tmp_path, capsys):
    from hfcl.compose.negation_cli import NegationArguments

    (args,) = parse_args([NegationArguments], ["--r", "4", "--epochs", "1", "--preset", "tiny", "--batch_size", "2"],
                         prog="t", description="t")
    assert (args.lora_r, args.num_train_epochs, args.zoo, args.per_device_train_batch_size) == (4, 1.0, "tiny", 2)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4
    for old, new in (("--r", "--lora_r"), ("--epochs", "--num_train_epochs"), ("--preset", "--zoo"),
                     ("--batch_size", "--per_device_train_batch_size")):
        assert any(line.startswith(f"hfcl: {old} is deprecated, use {new} ") for line in lines), (old, lines)
    config = tmp_path / "negate.yaml"
    config.write_text("r: 3\nout: old-dir\n")  # old spellings as YAML keys
    (args,) = parse_args([NegationArguments], ["--config", str(config)], prog="t", description="t")
    assert args.lora_r == 3 and args.output_dir == "old-dir"
    assert "key 'r' in" in capsys.readouterr().err
    assert given_fields(args) == {"lora_r", "output_dir"}


def test_bools_positionals_and_yaml_for_compose_and_push(tmp_path):
    from hfcl.compose.cli import ComposeArguments
    from hfcl.hub.cli import PushArguments

    for flag in (["--overwrite"], ["--overwrite", "true"], ["--overwrite=true"]):
        (args,) = parse_args([ComposeArguments], ["a+b", "--output_dir", "o", *flag], prog="t", description="t",
                             positional=("expression",))
        assert args.overwrite is True and args.expression == "a+b"
    config = tmp_path / "compose.yaml"
    config.write_text("expression: 0.5*a - b\nadapter: [a=x, b=y]\nout: o\nrank: auto\n")
    (args,) = parse_args([ComposeArguments], ["--config", str(config)], prog="t", description="t",
                         positional=("expression",))
    assert (args.expression, args.adapter, args.output_dir, args.lora_r) == ("0.5*a - b", ["a=x", "b=y"], "o", "auto")
    (args,) = parse_args([ComposeArguments], ["--adapter", "a=1", "--adapter", "b=2", "a + b", "--output_dir", "o"],
                         prog="t", description="t", positional=("expression",))
    assert args.adapter == ["a=1", "b=2"] and args.expression == "a + b"
    (push,) = parse_args([PushArguments], ["--run_dir", "runs/x", "--dry-run"], prog="t", description="t",
                         positional=("run_dir",))
    assert push.run_dir == "runs/x" and push.dry_run is True
    with pytest.raises(SystemExit):
        parse_args([PushArguments], ["--dry_run"], prog="t", description="t", positional=("run_dir",))


def test_unlearn_method_negation_is_routed_without_rewriting_argv(monkeypatch, tmp_path):
    from hfcl.compose import negation_cli

    seen = {}

    def fake(argv, prog="hfcl negate"):
        seen["argv"], seen["prog"] = list(argv), prog
        return 0

    monkeypatch.setattr(negation_cli, "main", fake)
    argv = ["--method", "negation", "--lam", "3", "--output_dir", "x"]
    assert main(["unlearn", *argv]) == 0
    assert seen == {"argv": argv, "prog": "hfcl unlearn --method negation"}
    config = tmp_path / "neg.yaml"
    config.write_text("method: negation\nlam: 3\n")
    assert main(["unlearn", "--config", str(config)]) == 0 and seen["argv"] == ["--config", str(config)]
    (args,) = parse_args([negation_cli.NegationArguments], argv, prog="t", description="t")
    assert args.method == "negation" and args.lam == 3.0


def test_zoo_recipe_keeps_the_options_given_explicitly(tmp_path):
    from hfcl.demo import DemoArguments
    from hfcl.zoo import ZooConfig, tiny_config
    from hfcl.zoo.cli import apply_zoo

    config = tmp_path / "demo.yaml"
    config.write_text("num_hidden_layers: 3\n")
    args, cfg = parse_args([DemoArguments, ZooConfig], ["--zoo", "tiny", "--config", str(config), "--hidden_size",
                                                        "192", "--per_device_train_batch_size", "5"],
                           prog="t", description="t")
    tiny = apply_zoo(args.zoo, cfg)
    # 192 is also the default's width: given explicitly, it still wins over the tiny recipe's
    assert (tiny.hidden_size, tiny.num_hidden_layers, tiny.batch_size) == (192, 3, 5)
    assert tiny.n_authors == tiny_config().n_authors != ZooConfig().n_authors
    assert apply_zoo("default", cfg) is cfg
