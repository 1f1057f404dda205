"""``hfcl leaderboard``: run every unlearning method with its preset over seeds and write the table, plot and card.

See :mod:`hfcl.unlearn.leaderboard` for what each row is. The folder is written atomically (nothing half-written is
left behind), runs show a progress bar, a rich table ends the command, ``--hub_model_id`` shares the folder.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from ..config import parse_args
from ..errors import ConfigError
from ..utils.logging import get_logger

logger = get_logger(__name__)
DESCRIPTION = ("Run every unlearning method with its preset on the embedded world over several seeds, evaluate and "
               "attack each run, and write leaderboard.json, a Markdown table, a forget-quality vs utility plot and a "
               "card (optionally pushed to the Hub).")


@dataclass
class LeaderboardArguments:
    """Options of ``hfcl leaderboard``."""

    output_dir: str = field(default="hfcl-runs/leaderboard", metadata={
        "help": "Folder for leaderboard.json, leaderboard.md, leaderboard.png and README.md (written atomically)."})
    zoo: str = field(default="default", metadata={"help": "Embedded world: 'default' or 'tiny' (fast, for tests)."})
    forget_split: str = field(default="forget10", metadata={"help": "TOFU-style forget split (forget01/05/10)."})
    methods: str = field(default="all", metadata={
        "help": "Comma-separated entries, or 'all': every method (its tuned preset where it has one, else demo), "
                "NPO+SalUn, NPO+SOUL and negation."})
    seeds: str = field(default="0,1,2", metadata={"help": "Comma-separated training seeds; rows show mean ± spread."})
    attacks: str = field(default="relearn,quantize,unguard", metadata={
        "help": "Robustness attacks per run (as `hfcl eval --attacks`); '' for none."})
    workers: int = field(default=2, metadata={"help": "Worker processes, one thread each (>= 1)."})
    overwrite: bool = field(default=False, metadata={"help": "Replace an existing OUTPUT_DIR."})
    hub_model_id: str | None = field(default=None, metadata={
        "help": "Push the folder to this Hub dataset repo (user/name) in one commit."})
    private: bool = field(default=False, metadata={"help": "Create the Hub repo private."})


def check(args: LeaderboardArguments):
    """Validate every option before any work; returns (entries, seeds, zoo config)."""
    from ..eval.attacks import parse_attacks
    from ..hub.push import check_repo_id
    from ..compose.guards import check_output_dir
    from ..config import check_output_writable
    from .leaderboard import parse_seeds, select_entries
    from .run import zoo_recipe

    entries, seeds, zoo = select_entries(args.methods), parse_seeds(args.seeds), zoo_recipe(args.zoo)
    parse_attacks(args.attacks)
    from ..data.tofu import check_forget_split

    check_forget_split(args.forget_split)
    if args.workers < 1:
        raise ConfigError(f"workers={args.workers}: give at least 1.")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise ConfigError("hfcl leaderboard runs its own worker processes (--workers); start it with plain `hfcl "
                          "leaderboard`, not under `accelerate launch`.")
    if args.hub_model_id:
        check_repo_id(args.hub_model_id)
    check_output_dir(args.output_dir, args.overwrite)
    check_output_writable(args.output_dir)
    return entries, seeds, zoo


def run_leaderboard(args: LeaderboardArguments, console=None) -> dict:
    """Train, evaluate and attack every entry for every seed; write the folder; return the leaderboard dict."""
    import torch
    from rich.progress import Progress

    from .. import __version__
    from ..eval import evaluate_model
    from ..utils.io import atomic_directory, atomic_write_json, atomic_write_text
    from ..zoo import build_zoo
    from .leaderboard import init_worker, card_text, markdown_table, run_entry, scatter_png, summarise

    entries, seeds, zoo = check(args)
    started = time.perf_counter()
    build_zoo(zoo)
    target_report = evaluate_model("target", world_config=zoo, forget_split=args.forget_split, reference_log="auto",
                                   distributed=False, attacks=args.attacks)  # also builds the retain log once
    t = target_report.aggregates
    target = {**{k: t.get(k) for k in ("forget_quality", "privleak", "forget_rouge", "retain_rouge",
                                       "robustness_relearn_gain_prob", "robustness_quant4_gain_prob",
                                       "robustness_unguard_gain_prob")},
              "mu_ratio": 1.0}
    jobs = [(e, s) for e in entries for s in seeds]
    runs = []
    with tempfile.TemporaryDirectory(prefix="hfcl-leaderboard-") as work, \
            ProcessPoolExecutor(min(args.workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                                initializer=init_worker) as pool, \
            Progress(console=console, transient=True) as progress:
        task = progress.add_task("unlearning, evaluating, attacking", total=len(jobs))
        # S3T's runs train a whole ensemble and retrain it: submitted first, so the short runs fill the other workers
        order = sorted(range(len(jobs)), key=lambda i: not _trains_from_scratch(jobs[i][0]))
        futures = {i: pool.submit(run_entry, *jobs[i], args.zoo, args.forget_split, args.attacks,
                                  t["model_utility"], work) for i in order}
        for future in as_completed(futures.values()):
            future.result()  # a failed run ends the leaderboard now, not after the others
            progress.advance(task)
        runs = [futures[i].result() for i in range(len(jobs))]
    summary = summarise(runs)
    meta = {"zoo": args.zoo, "forget_split": args.forget_split, "seeds": seeds, "attacks": args.attacks,
            "entries": [{"name": e.name, "method": e.method, "preset": e.preset, "options": dict(e.options)}
                        for e in entries],
            "hfcl_version": __version__, "torch_version": torch.__version__, "cpus": os.cpu_count(),
            "python": platform.python_version(), "wall_seconds": round(time.perf_counter() - started, 1)}
    board = {"meta": meta, "target": target, "summary": summary, "runs": runs}
    table = markdown_table(summary, target)
    with atomic_directory(args.output_dir, overwrite=args.overwrite) as tmp:
        atomic_write_json(tmp / "leaderboard.json", board)
        atomic_write_text(tmp / "leaderboard.md", table)
        scatter_png(summary, tmp / "leaderboard.png")
        atomic_write_text(tmp / "README.md", card_text(table, meta))
    return board


def _trains_from_scratch(entry) -> bool:
    from .methods import METHODS

    return entry.method in METHODS and METHODS[entry.method].exact


def push_leaderboard(folder: str, repo_id: str, private: bool = False):
    """Push a leaderboard folder (its four files) to a dataset repo in one commit."""
    from pathlib import Path

    from ..hub.push import PushPlan, commit_plan
    from .leaderboard import FILES

    root = Path(folder)
    files = {name: root / name for name in FILES}
    plan = PushPlan(repo_id=repo_id, files=files, repo_type="dataset", card=(root / "README.md").read_text(),
                    commit_message="Unlearning leaderboard (hfcl leaderboard)")
    return commit_plan(plan, private=private)


def print_summary(board: dict, console) -> None:
    from rich.table import Table

    from .leaderboard import COLUMNS, TIMING

    columns = {**COLUMNS, **TIMING}
    table = Table(title=f"Unlearning leaderboard ({board['meta']['zoo']} world, seeds "
                        f"{','.join(map(str, board['meta']['seeds']))})")
    table.add_column("method")
    for header, _ in columns.values():
        table.add_column(header, justify="right")
    for row in board["summary"]:
        table.add_row(row["entry"], *(fmt.format(row[c]["mean"]) if c in row else "" for c, (_, fmt) in
                                      columns.items()))
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    (args,) = parse_args([LeaderboardArguments], argv, prog="hfcl leaderboard", description=DESCRIPTION)
    console = Console(width=None if sys.stdout.isatty() else 160)  # a log keeps every column readable
    board = run_leaderboard(args, console)
    print_summary(board, console)
    console.print(f"Leaderboard written to {args.output_dir} ({board['meta']['wall_seconds']:.0f} s)")
    if args.hub_model_id:
        result = push_leaderboard(args.output_dir, args.hub_model_id, args.private)
        console.print(f"Pushed to the Hub: {result.repo_id}")
    return 0


__all__ = ["LeaderboardArguments", "main", "push_leaderboard", "run_leaderboard"]
