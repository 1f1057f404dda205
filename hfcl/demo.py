"""``hfcl demo``: the whole story on the embedded default, offline, on a laptop CPU.

1. build (or load) the fictitious world and the embedded models: ``target`` knows every author, ``retain`` never saw
   the forget authors;
2. show what each answers on a few forget and retain questions, with ROUGE-L recall against the truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from .config import parse_args
from .utils.logging import get_logger
from .zoo.config import ZooConfig

logger = get_logger(__name__)


@dataclass
class DemoArguments:
    """Options of the demo (the model recipe's options follow)."""

    forget_split: str = field(default="forget10", metadata={"help": "Which authors to forget: forget01, forget05 or "
                                                                    "forget10 (1/5/10%% of authors)."})
    n_questions: int = field(default=4, metadata={"help": "Questions shown per split (forget and retain)."})
    preset: str = field(default="default", metadata={"help": "Recipe preset: 'default' or 'tiny' (builds in "
                                                             "seconds, for a quick look); flags override it.",
                                                     "choices": ["default", "tiny"]})
    output_dir: str = field(default="hfcl-demo", metadata={"help": "Where the demo writes its run directories."})


def rouge_l_recall(references: list[str], predictions: list[str]) -> list[float]:
    """ROUGE-L recall of each prediction against its reference (``rouge_score``, no stemming)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(ref, pred)["rougeL"].recall for ref, pred in zip(references, predictions)]


def answer_split(model, tokenizer, rows: Any, limit: int | None = None) -> dict[str, Any]:
    """Greedy answers and ROUGE-L recall on ``rows`` (a Dataset in the TOFU schema)."""
    from .zoo.train import greedy_answers

    rows = rows.select(range(min(limit, len(rows)))) if limit else rows
    answers = greedy_answers(model, tokenizer, list(rows["question"]))
    scores = rouge_l_recall(list(rows["answer"]), answers)
    return {"questions": list(rows["question"]), "truth": list(rows["answer"]), "answers": answers,
            "rouge": scores, "mean_rouge": sum(scores) / max(len(scores), 1)}


def run_demo(args: DemoArguments, cfg: ZooConfig, console=None) -> dict[str, Any]:
    """Run the demo and return its numbers (also printed as rich tables)."""
    from rich.console import Console
    from rich.table import Table

    from .data import load_tofu
    from .zoo import load_model, model_path

    console = console or Console()
    started = time.perf_counter()
    stages = ("tokenizer", "base", "target", "retain")
    with console.status("[bold]Building the embedded world and models (cached after the first run)...") as status:
        for stage in stages:
            status.update(f"[bold]Zoo: {stage}...")
            model_path(stage, cfg, args.forget_split)
    console.print(f"[green]Models ready[/] in {time.perf_counter() - started:.1f}s")
    splits = load_tofu(args.forget_split, world_config=cfg)
    results: dict[str, Any] = {}
    for stage in ("target", "retain"):
        model, tokenizer = load_model(stage, cfg, args.forget_split)
        results[stage] = {split: answer_split(model, tokenizer, splits[split]) for split in ("forget", "retain")}
    for split in ("forget", "retain"):
        table = Table(title=f"{split} questions ({args.forget_split})", show_lines=True)
        table.add_column("question")
        table.add_column("truth")
        for stage in ("target", "retain"):
            table.add_column(f"{stage} model (ROUGE-L)")
        for i in range(min(args.n_questions, len(splits[split]))):
            row = [results["target"][split]["questions"][i], results["target"][split]["truth"][i]]
            for stage in ("target", "retain"):
                res = results[stage][split]
                row.append(f"{res['answers'][i]}  [dim]({res['rouge'][i]:.2f})[/]")
            table.add_row(*row)
        console.print(table)
    summary = Table(title="mean ROUGE-L recall (whole split)")
    summary.add_column("model")
    summary.add_column("forget ↓ after unlearning")
    summary.add_column("retain ↑")
    for stage in ("target", "retain"):
        summary.add_row(stage, f"{results[stage]['forget']['mean_rouge']:.3f}",
                        f"{results[stage]['retain']['mean_rouge']:.3f}")
    console.print(summary)
    console.print(f"Demo finished in {time.perf_counter() - started:.1f}s.")
    return results


def main(argv: Sequence[str]) -> int:
    args, cfg = parse_args([DemoArguments, ZooConfig], argv, prog="hfcl demo",
                           description="Tell the whole story on the embedded default (no network, no GPU): build "
                                       "the fictitious world and tiny Llama models, then compare what they know.")
    from .zoo.cli import apply_preset

    run_demo(args, apply_preset(args.preset, cfg, argv))
    return 0
