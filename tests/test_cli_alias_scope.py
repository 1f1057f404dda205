"""Deprecated aliases are scoped: ``--push`` was the demo's repo flag only, so a trainer that inherits
``hub_model_id`` from ``TrainingArguments`` must not silently accept it (``hfcl unlearn --push true`` once set
``hub_model_id="true"``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from hfcl.cli import command_parser, main
from hfcl.config import DEPRECATED_ALIASES, ScopedAlias, build_parser, parse_args


def test_unlearn_rejects_the_demos_push_alias_with_a_did_you_mean(capsys):
    with pytest.raises(SystemExit) as info:
        main(["unlearn", "--push", "true"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --push true" in err and "did you mean --push_to_hub?" in err
    assert "deprecated" not in err


@pytest.mark.parametrize("command", ["unlearn", "continual", "push", "push-space"])
def test_only_the_demo_has_push(command):
    assert "--push" not in command_parser(command)._option_string_actions
    assert "--push" in command_parser("demo")._option_string_actions


def test_demo_push_still_works_with_the_deprecation_note(capsys):
    from hfcl.demo import DemoArguments
    from hfcl.zoo.config import ZooConfig

    args, _ = parse_args([DemoArguments, ZooConfig], ["--push", "me/x", "--zoo", "tiny"], prog="hfcl demo",
                         description="demo")
    assert args.hub_model_id == "me/x"
    err = capsys.readouterr().err
    assert "--push is deprecated, use --hub_model_id" in err


def test_scope_matches_command_or_dataclass_and_applies_to_yaml_keys(tmp_path):
    @dataclass
    class Other:
        """Not the demo."""

        hub_model_id: str = field(default=None, metadata={"help": "Repo."})

    alias = DEPRECATED_ALIASES["push"]
    assert isinstance(alias, ScopedAlias)
    assert alias.applies_to("hfcl demo", [Other]) and alias.applies_to("demo", [])
    assert not alias.applies_to("hfcl unlearn", [Other])
    assert "--push" in build_parser([Other], "hfcl demo", "d")._option_string_actions
    parser = build_parser([Other], "hfcl other", "o")
    assert "--push" not in parser._option_string_actions
    # global aliases are untouched: --repo_id still maps to hub_model_id anywhere
    assert parser._option_string_actions["--repo_id"].dest == "hub_model_id"
    config = tmp_path / "c.yaml"
    config.write_text("push: me/x\n")
    with pytest.raises(Exception, match="push"):
        parse_args([Other], ["--config", str(config)], prog="hfcl other", description="o")
