"""The ``hfcl`` command line: ``hfcl <command> [options]``.

Each command lives next to the code it drives and exposes ``main(argv) -> int``; this module only dispatches, and
imports a command's module when that command runs, so ``hfcl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

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
                 "Move a PEFT adapter to a new or updated base model (checked copy, or data-free distillation)."),
    "compose": ("hfcl.compose.cli:main",
                "Compose PEFT adapters exactly on their weight deltas (sum, difference, TIES/DARE merges)."),
    "extract-lora": ("hfcl.compose.cli:extract_main",
                     "Extract a PEFT LoRA from a full fine-tune by truncated SVD of the weight delta."),
    "negate": ("hfcl.compose.negation_cli:main", "Unlearn by negation: subtract a LoRA trained on the forget set."),
}


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
        parser.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    target, _ = COMMANDS[name]
    module_name, func_name = target.split(":")
    command = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(command(rest) or 0)
    except HfclError as exc:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
