"""``hfcl push OUTPUT_DIR --hub_model_id user/name``: share a run directory on the Hub in one commit.

The repo is ``--hub_model_id``, the name every trainer already takes from ``TrainingArguments``; the old
``--repo_id`` / ``--repo-id`` still works for one release (a deprecation note, :data:`hfcl.config.DEPRECATED_ALIASES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..config import parse_args


@dataclass
class PushArguments:
    """What to push and where."""

    run_dir: str = field(metadata={"help": "Run directory to push (an hfcl output_dir or a save_pretrained folder); "
                                           "may also be given as the first positional argument."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Target repo, 'namespace/name' (created if "
                                                                     "missing; the trainers' --hub_model_id). "
                                                                     "Required unless --card_only."})
    private: bool = field(default=False, metadata={"help": "Create the repo as private (an existing repo keeps its "
                                                           "visibility)."})
    revision: str | None = field(default=None, metadata={"help": "Branch to push to (created from main if missing)."})
    create_pr: bool = field(default=False, metadata={"help": "Open a pull request instead of committing directly."})
    tag: str | None = field(default=None, metadata={"help": "Tag the new commit (e.g. stage-3 of a continual run)."})
    dry_run: bool = field(default=False, metadata={"help": "Write exactly the files that would be pushed to "
                                                           "--dry_run_dir, print the card, push nothing."})
    dry_run_dir: str | None = field(default=None, metadata={"help": "Folder for --dry_run (default: "
                                                                    "RUN_DIR/hub_dry_run); giving it implies "
                                                                    "--dry_run."})
    card_only: bool = field(default=False, metadata={"help": "Only write the card into RUN_DIR (README.md, plots/); "
                                                             "push nothing, no token needed."})
    card: str = field(default="render", metadata={"help": "'render' the card from hfcl_run.json + eval_report.json, "
                                                          "or 'keep' the run directory's README.md.",
                                                  "choices": ["render", "keep"]})
    base_model: str | None = field(default=None, metadata={"help": "Hub id of the base model for the card metadata "
                                                                   "(default: from the adapter/model config when it "
                                                                   "is a Hub id)."})
    license: str | None = field(default=None, metadata={"help": "License id for the card (e.g. apache-2.0)."})
    dataset_id: str | None = field(default=None, metadata={"help": "Hub id of the evaluation data for model-index "
                                                                   "(e.g. a dataset pushed with hfcl)."})
    commit_message: str | None = field(default=None, metadata={"help": "Commit title (default: generated)."})
    stages: bool = field(default=False, metadata={"help": "A continual run (hfcl continual): push every stage to its "
                                                          "own branch (task-K-NAME / step-K-NAME, each started from "
                                                          "the previous one, with the matrix so far on its card), "
                                                          "then the final model and full history to main."})
    overwrite: bool = field(default=False, metadata={"help": "With --stages: replace stage branches that already "
                                                             "exist (refused otherwise, before anything is pushed)."})


def main(argv: Sequence[str]) -> int:
    """Entry point of ``hfcl push``."""
    (args,) = parse_args([PushArguments], list(argv), prog="hfcl push", positional=("run_dir",),
                         description="Push a model or adapter run directory (safetensors weights, tokenizer, card, "
                                     "eval_report.json, plots, hfcl_run.json) to the Hub in one commit. The token "
                                     "comes from HF_TOKEN or `hf auth login`.")
    from pathlib import Path

    from rich.console import Console
    from rich.markdown import Markdown

    from .push import push_run

    console = Console()
    card_options = {"base_model": args.base_model, "license": args.license, "dataset_id": args.dataset_id}
    if args.card_only:
        from .share import write_eval_card

        readme = write_eval_card(args.run_dir, args.hub_model_id, **card_options)
        console.print(Markdown(readme.read_text(encoding="utf-8")))
        console.print(f"[bold]card written[/] to {readme} (nothing pushed)", highlight=False)
        return 0
    if not args.hub_model_id:
        from ..errors import ConfigError

        raise ConfigError("--hub_model_id is required to push (namespace/name; or use --card_only to write the card "
                          "locally).")
    dry_run = (args.dry_run_dir or str(Path(args.run_dir) / "hub_dry_run")) if args.dry_run or args.dry_run_dir \
        else None
    if dry_run:
        from ..config import check_output_writable

        check_output_writable(dry_run, "--dry_run_dir")
    if args.stages:
        return _push_stages(args, console, dry_run, card_options)
    result = push_run(args.run_dir, args.hub_model_id, private=args.private, revision=args.revision,
                      create_pr=args.create_pr, tag=args.tag, dry_run=dry_run, card=args.card,
                      commit_message=args.commit_message, **card_options)
    if result.skipped:
        console.print(f"[yellow]not pushed[/] (outside the allow-list): {', '.join(result.skipped)}", highlight=False)
    if result.dry_run_dir is not None:
        console.print(Markdown((result.dry_run_dir / "README.md").read_text(encoding="utf-8")))
        console.print(f"[bold]dry run[/]: {len(result.files)} file(s) written to {result.dry_run_dir}:",
                      highlight=False)
        for path in result.files:
            console.print(f"  {path}", highlight=False)
        return 0
    where = result.pr_url or result.commit_url
    console.print(f"[bold green]pushed[/] {len(result.files)} file(s) to {result.repo_id}@{result.revision}: {where}",
                  highlight=False)
    if result.tag:
        console.print(f"tagged {result.tag}", highlight=False)
    return 0


def _push_stages(args, console, dry_run, card_options) -> int:
    """``hfcl push RUN_DIR --stages``: one branch per continual stage, then main; a table of what went where."""
    from rich.table import Table

    from ..errors import ConfigError
    from .stages import push_continual

    if args.revision or args.tag or args.create_pr or args.card != "render":
        raise ConfigError("--stages names its own branches and renders every card: drop --revision, --tag, "
                          "--create_pr and --card.")
    results = push_continual(args.run_dir, args.hub_model_id, overwrite=args.overwrite, private=args.private,
                             dry_run=dry_run, **card_options)
    table = Table(title=f"{args.hub_model_id}: {len(results) - 1} stage(s) + main" + (" (dry run)" if dry_run else ""))
    for name in ("branch", "files", "commit" if not dry_run else "written to"):
        table.add_column(name)
    for r in results:
        table.add_row(r.revision, str(len(r.files)), str(r.dry_run_dir) if dry_run else (r.commit_oid or "")[:10])
    console.print(table)
    return 0
