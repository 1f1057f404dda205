"""One CLI vocabulary: every command's parser, built without running it, spells each concept one way.

The walk covers every command of ``hfcl.cli.COMMANDS`` and every sub-command of ``SUBCOMMANDS`` (so a new command is
checked the moment it is registered), and a fake command shows that the walk catches a second spelling.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest

from hfcl.cli import COMMANDS, SUBCOMMANDS, command_parser
from hfcl.config import DEPRECATED_ALIASES, TRAINER_GROUP, build_parser

#: Spellings that name a concept the vocabulary spells otherwise -> the canonical flag(s).
SYNONYMS = {
    "out": "output_dir", "outdir": "output_dir", "out_dir": "output_dir", "output": "output_dir",
    "output_path": "output_dir",
    "r": "lora_r", "rank": "lora_r", "lora_rank": "lora_r",
    "epochs": "num_train_epochs", "n_epochs": "num_train_epochs", "num_epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size / per_device_eval_batch_size",
    "bs": "per_device_train_batch_size", "train_batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
    "lr": "learning_rate",
    "max_len": "max_length", "max_seq_length": "max_length",
    "split": "forget_split",
    "random_seed": "seed",
    "zoo_preset": "zoo",
    "dryrun": "dry_run", "dry_run_folder": "dry_run_dir",
    "force_overwrite": "overwrite",
    # the Hub repo is --hub_model_id everywhere: the trainers inherit it from TrainingArguments, push/push-space too
    "repo_id": "hub_model_id", "repo": "hub_model_id", "hub_repo_id": "hub_model_id", "hub_repo": "hub_model_id",
    "push": "hub_model_id",  # `hfcl demo --push REPO`; the bool that pushes is --push_to_hub
}
ZOO_RECIPES = {"default", "tiny"}


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    parsers = {}
    for name in COMMANDS:
        parsers[name] = command_parser(name)
        for sub in SUBCOMMANDS.get(name, ()):
            parsers[f"{name} {sub}"] = command_parser(name, sub)
    parsers["unlearn --method negation"] = command_parser("unlearn", "--method", "negation")
    return parsers


def spelling_problems(parser: argparse.ArgumentParser) -> list[str]:
    """Every visible option spelled the non-canonical way, every zoo recipe not called --zoo, every --dry_run that
    is not a bool with a --dry_run_dir, every option without help, and every old spelling that is not hidden."""
    problems = []
    visible = {}
    for action in parser._actions:
        for string in action.option_strings:
            name = string.lstrip("-").replace("-", "_")
            if action.help is argparse.SUPPRESS:
                if type(action).__name__ != "_DeprecatedAlias" and name not in ("help",):
                    problems.append(f"{string} is hidden but is not a deprecated alias")
                continue
            visible[name] = action
            if name in SYNONYMS:
                problems.append(f"{string} should be --{SYNONYMS[name]}")
        if action.option_strings and action.help is not argparse.SUPPRESS and not (action.help or "").strip():
            problems.append(f"{action.option_strings[0]} has no help")
    for name, action in visible.items():
        if action.choices and ZOO_RECIPES <= set(action.choices) and name != "zoo":
            problems.append(f"--{name} picks a zoo recipe; call it --zoo")
    if "preset" in visible and visible["preset"].choices and ZOO_RECIPES & set(visible["preset"].choices):
        problems.append("--preset is a hyperparameter recipe, not a zoo recipe")
    if "dry_run" in visible:
        if visible["dry_run"].const is not True:
            problems.append("--dry_run must be a bool (the folder is --dry_run_dir)")
        if "dry_run_dir" not in visible:
            problems.append("--dry_run without --dry_run_dir")
    return problems


def test_every_command_spells_each_concept_once():
    parsers = all_parsers()
    assert {"demo", "unlearn", "eval", "compose", "extract-lora", "transfer task", "push", "push-space"} <= set(parsers)
    problems = {name: spelling_problems(p) for name, p in parsers.items()}
    assert {name: found for name, found in problems.items() if found} == {}
    # one name for the Hub repo: the trainers' inherited --hub_model_id is also push's and push-space's
    for name in ("unlearn", "push", "push-space", "demo"):
        assert "--hub_model_id" in parsers[name]._option_string_actions, name


def test_old_spellings_are_hidden_aliases_of_the_canonical_flags():
    assert set(DEPRECATED_ALIASES) <= set(SYNONYMS) | {"preset"}
    parsers = all_parsers()
    expected = {"compose": {"--out": "output_dir", "--rank": "lora_r"},
                "extract-lora": {"--out": "output_dir", "--rank": "lora_r"},
                "eval": {"--out": "output_dir", "--batch_size": "per_device_eval_batch_size"},
                "negate": {"--r": "lora_r", "--epochs": "num_train_epochs", "--preset": "zoo",
                           "--batch_size": "per_device_train_batch_size"},
                "transfer task": {"--epochs": "num_train_epochs"},
                "zoo": {"--preset": "zoo"}, "space": {"--preset": "zoo"},
                "push-space": {"--preset": "zoo", "--repo_id": "hub_model_id", "--repo-id": "hub_model_id"},
                "push": {"--repo_id": "hub_model_id", "--repo-id": "hub_model_id"},
                "demo": {"--preset": "zoo", "--push": "hub_model_id"}}
    for command, aliases in expected.items():
        actions = parsers[command]._option_string_actions
        for old, new in aliases.items():
            assert old in actions and actions[old].dest == new and actions[old].help is argparse.SUPPRESS, \
                (command, old)
    # unlearn's --preset is its hyperparameter recipe (demo), not an alias of a zoo option
    assert type(parsers["unlearn"]._option_string_actions["--preset"]).__name__ != "_DeprecatedAlias"


def test_the_walk_catches_a_second_spelling():
    @dataclass
    class Bad:
        """A command that spells things its own way."""

        out: str = field(default="x", metadata={"help": "Output folder."})
        preset: str = field(default="default", metadata={"help": "Zoo.", "choices": ["default", "tiny"]})
        dry_run: str = field(default="", metadata={"help": "Folder."})
        seed: int = field(default=0, metadata={"help": ""})

    problems = " | ".join(spelling_problems(build_parser([Bad], "bad", "bad")))
    for text in ("--out should be --output_dir", "--preset picks a zoo recipe", "--dry_run must be a bool",
                 "--seed has no help"):
        assert text in problems


@pytest.mark.parametrize("command,own,inherited", [("unlearn", "--method", "--gradient_accumulation_steps"),
                                                    ("transfer", "--kd_mode", "--gradient_accumulation_steps")])
def test_help_lists_own_options_before_the_trainer_options(command, own, inherited, capsys):
    from hfcl.cli import main

    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    own, inherited = text.index(f"\n  {own} "), text.index(f"\n  {inherited} ")
    assert own < text.index(TRAINER_GROUP + ":") < inherited
    assert text.index("UnlearnRunArgs:" if command == "unlearn" else "TransferArguments:") < own


def test_transfer_task_and_negation_route_are_documented(capsys):
    from hfcl.cli import main

    assert main(["--help"]) == 0
    assert "hfcl transfer task" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    assert "hfcl transfer task --help" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["unlearn", "--help"])
    assert "--method negation" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit):
        main(["unlearn", "--method", "negation", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--lam" in text and "hfcl unlearn --method negation" in text
