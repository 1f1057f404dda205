"""The ``hfcl`` command line: ``hfcl <command> [options]``.

Each command lives next to the code it drives and exposes ``main(argv) -> int`` that parses through
:func:`hfcl.config.parse_args`; this module only dispatches, and imports a command's module when that command runs,
so ``hfcl --help`` stays fast. :func:`command_parser` builds a command's parser without running it (the flag-spelling
test walks every command and sub-command this way). An :class:`~hfcl.errors.HfclError` ends with one ``error:`` line
and exit code 2; Ctrl-C with one ``interrupted`` line and exit code 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import HfclError

# name -> ("module:function", one-line help). Commands register here when their feature lands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("hfcl.demo:main", "Tell the whole story on the embedded default: build, compare, unlearn, evaluate."),
    "zoo": ("hfcl.zoo.cli:main", "Build or locate the embedded default models (base, target, retain)."),
    "unlearn": ("hfcl.unlearn.cli:main",
                "Make a model forget a split (NPO, GradDiff, SimNPO, IdkDPO, RMU, ..., or negation) and save the run."),
    "eval": ("hfcl.eval.cli:main",
             "Evaluate a model on TOFU/MUSE (forget quality, utility, PrivLeak, MIA) and write eval_report.json."),
    "push": ("hfcl.hub.cli:main",
             "Share a run directory on the Hub in one commit: weights, tokenizer, card, eval report, plots."),
    "space": ("hfcl.space.cli:main",
              "Serve the Gradio Space: models side by side with p(truth) and ROUGE-L, chat, eval cards, composition."),
    "push-space": ("hfcl.space.deploy:push_main",
                   "Create a Gradio Space running the hfcl app and upload it in one commit."),
    "transfer": ("hfcl.transfer.cli:main",
                 ("Move a PEFT adapter to a new or updated base model (checked copy, or data-free distillation); "
                  "`hfcl transfer task` trains the embedded task adapter to move.")),
    "compose": ("hfcl.compose.cli:main",
                "Compose PEFT adapters exactly on their weight deltas (sum, difference, TIES/DARE merges)."),
    "extract-lora": ("hfcl.compose.cli:extract_main",
                     "Extract a PEFT LoRA from a full fine-tune by truncated SVD of the weight delta."),
    "negate": ("hfcl.compose.negation_cli:main", "Unlearn by negation: subtract a LoRA trained on the forget set."),
    "leaderboard": ("hfcl.unlearn.leaderboard_cli:main",
                    "Run every unlearning method with its preset over seeds, evaluate and attack each, write the table."),
    "continual": ("hfcl.continual.cli:main",
                  "Learn a stream of tasks one after another (replay, EWC, L2, LwF, O-LoRA, EMA) and write R."),
}


#: Commands whose first argument may name a sub-command with its own options (``hfcl transfer task``).
SUBCOMMANDS: dict[str, tuple[str, ...]] = {"transfer": ("task",)}


def load_command(name: str):
    """The entry point function of command ``name``."""
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def command_parser(name: str, *sub: str) -> argparse.ArgumentParser:
    """The parser of ``hfcl NAME [SUB]``, built by the command itself but not run (nothing is loaded or trained)."""
    from .config import ParserCaptured, capture_parsers

    command = load_command(name)
    with capture_parsers() as captured:
        try:
            command([*sub, "--help"])
        except ParserCaptured:
            pass
        except SystemExit:
            pass
    if not captured:
        raise RuntimeError(f"`hfcl {' '.join((name, *sub))}` does not parse through hfcl.config.parse_args.")
    return captured[-1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hfcl",
        description="Make a fine-tuned model learn continually, forget on request, combine or move what it learned, "
                    "prove it, share it and show it. Run `hfcl COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="store_true", help="Print the hfcl version and exit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        from . import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib

        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parser.error(f"unknown command {name!r}{hint}; choose from {', '.join(COMMANDS)}")
    try:
        command = load_command(name)
        return int(command(rest) or 0)
    except HfclError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
